"""Token-level PPO and GRPO on env=text: completions and tokens per second of generation and of
the update, on this machine's CPU (and on `--device cuda` where a GPU is at hand).

No peer runs beside it: TRL's trainers need a Hugging Face model, and on this small transformer
there is nothing to compare against, so the figures are absolute. Each algorithm runs its tuned
preset's settings (rltrain/tuned/*_text*.yaml) for `--iterations` iterations after
`--warmup`; generation is the time inside `sample` (token by token, a forward pass over the prefix
so far, then the rewards), the update everything else in `iterate` (scoring, advantages, epochs).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from rltrain.algos import grpo, ppo
from rltrain.algos.base import Context
from rltrain.algos.registry import algorithm_class
from rltrain.algos.token_rl import sample
from rltrain.config.store import compose_run_config
from rltrain.config.validate import typed_config
from rltrain.envs.factory import make_vec_env
from rltrain.logging import Recorder

TIMES = {"sample": 0.0}
COUNTS = {"completions": 0, "tokens": 0}


def timed_sample(*args: Any, **kwargs: Any) -> Any:
    """`sample`, timed: both algorithm modules call it by this name."""
    start = time.perf_counter()
    batch = sample(*args, **kwargs)
    if batch.mask.is_cuda:
        torch.cuda.synchronize()
    TIMES["sample"] += time.perf_counter() - start
    COUNTS["completions"] += len(batch.mask)
    COUNTS["tokens"] += int(batch.mask.sum().item())
    return batch


def measure(algo: str, task: str, device: str, warmup: int, iterations: int) -> dict[str, float]:
    node = compose_run_config([f"algo={algo}", "env=text", f"env.task={task}", "seed=0"])
    cfg = typed_config(node)
    env = make_vec_env(cfg.env, num_envs=cfg.env.num_envs, seed=cfg.seed, training=True)
    ctx = Context(
        cfg=cfg, env=env, device=torch.device(device), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(cfg.seed), run_dir=None,
    )  # fmt: skip
    learner = algorithm_class(cfg.algo.name, cfg.env.name)(cfg.algo, ctx)
    for _ in range(warmup):
        learner.iterate()
    TIMES["sample"], COUNTS["completions"], COUNTS["tokens"] = 0.0, 0, 0
    start = time.perf_counter()
    for _ in range(iterations):
        learner.iterate()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    env.close()
    update = total - TIMES["sample"]
    return {
        "completions": COUNTS["completions"], "tokens": COUNTS["tokens"],
        "gen_completions_s": COUNTS["completions"] / TIMES["sample"],
        "gen_tokens_s": COUNTS["tokens"] / TIMES["sample"],
        "update_completions_s": COUNTS["completions"] / update,
        "update_tokens_s": COUNTS["tokens"] / update,
        "iteration_tokens_s": COUNTS["tokens"] / total,
    }  # fmt: skip


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="sort")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (rltrain's default)")
    args, _ = parser.parse_known_args()
    ppo.sample = grpo.sample = timed_sample  # type: ignore[attr-defined]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [
        "| algo | completions per iteration | generation: completions/s | tokens/s "
        "| update: completions/s | tokens/s | whole iteration: tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for algo in ("ppo", "grpo"):
        m = measure(algo, args.task, args.device, args.warmup, args.iterations)
        rows.append(
            f"| {algo} | {m['completions'] // args.iterations} | {m['gen_completions_s']:,.0f} "
            f"| {m['gen_tokens_s']:,.0f} | {m['update_completions_s']:,.0f} "
            f"| {m['update_tokens_s']:,.0f} | {m['iteration_tokens_s']:,.0f} |"
        )
    report = (f"### env=text env.task={args.task}, presets' settings, device={args.device}, "
              f"{args.threads} thread(s), {args.iterations} iterations after {args.warmup}\n\n"
              + "\n".join(rows))  # fmt: skip
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
