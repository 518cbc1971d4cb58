"""GRPO on a Hugging Face model: rltrain (`env=llm network=hf`) beside TRL's GRPOTrainer, same
run, same tiny model, prompts, reward and settings, one torch thread each, each in its own
process (peak memory is the child's maximum resident set).

Settings on both sides: 4 prompts x 4 completions per step, up to 16 new tokens at temperature
1 (no top-k), one update epoch over the 16 completions, lr 1e-4, KL weight 0.05, clip 0.2,
reward 1 if the completion says "cat". The model is tests/tiny_lm.py's GPT-2 widened to
`--width` (random weights). Measured: generated tokens per second of whole steps after
`--warmup` steps, and for rltrain also the split into generation (KV-cache sampling) and the
update (scoring, reference, loss, backward).

    python scripts/bench_llm.py [--steps 30 --warmup 3 --width 128 --layers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["the cat", "a dog", "the big red", "one two", "yes", "small blue", "a mat", "two"]
GROUP, PER_STEP, NEW_TOKENS, LR, BETA = 4, 4, 16, 1e-4, 0.05


def build_model(root: Path, width: int, layers: int) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_lm import save_tiny_model  # the tests' tokenizer and model

    path = save_tiny_model(root, "gpt2")
    config = GPT2Config.from_pretrained(path)
    config.n_embd, config.n_layer, config.n_head = width, layers, 4
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_rltrain(model: Path, prompts: Path, steps: int, warmup: int) -> dict[str, float]:
    import numpy as np
    import torch

    from rltrain.algos.base import Context
    from rltrain.algos.lm_rl import LMRun
    from rltrain.algos.registry import algorithm_class
    from rltrain.config.store import compose_run_config
    from rltrain.config.validate import typed_config
    from rltrain.envs.factory import make_vec_env
    from rltrain.logging import Recorder

    node = compose_run_config([
        "algo=grpo", "env=llm", "network=hf", f"network.path={model}", f"env.prompts={prompts}",
        "env.reward=keyword:cat", f"env.num_envs={PER_STEP}", f"algo.group_size={GROUP}",
        f"algo.batch_size={GROUP * PER_STEP}", "algo.n_epochs=1", f"algo.lr={LR}",
        f"env.beta={BETA}", f"env.max_new_tokens={NEW_TOKENS}", "seed=0",
    ])  # fmt: skip
    cfg = typed_config(node)
    env = make_vec_env(cfg.env, num_envs=cfg.env.num_envs, seed=0, training=True)
    assert env.num_envs == PER_STEP, "GRPO samples env.num_envs prompts per step"
    ctx = Context(cfg=cfg, env=env, device=torch.device("cpu"),
                  recorder=Recorder(None, enabled=False), rng=np.random.default_rng(0),
                  run_dir=None)  # fmt: skip
    learner: Any = algorithm_class("grpo", "llm")(cfg.algo, ctx)
    untimed, timing = LMRun.sample, {"sample": 0.0}

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        batch = untimed(self, *args, **kwargs)
        timing["sample"] += time.perf_counter() - start
        return batch

    LMRun.sample = timed  # type: ignore[method-assign]
    for _ in range(warmup):
        learner.iterate()
    timing["sample"], tokens, start = 0.0, 0, time.perf_counter()
    for _ in range(steps):
        tokens += learner.iterate()
    total = time.perf_counter() - start
    update = total - timing["sample"]
    return {"tokens": tokens, "tokens_s": tokens / total, "peak_mb": peak_mb(),
            "gen_tokens_s": tokens / timing["sample"], "update_tokens_s": tokens / update}


def run_trl(model: Path, prompts: Path, steps: int, warmup: int) -> dict[str, float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(model)

    def cat(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [1.0 if "cat" in c.split() else 0.0 for c in completions]

    marks: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, per_device_train_batch_size=GROUP * PER_STEP, num_generations=GROUP,
            max_completion_length=NEW_TOKENS, temperature=1.0, top_k=0, learning_rate=LR,
            beta=BETA, epsilon=0.2, num_iterations=1, max_steps=warmup + steps,
            loss_type="grpo",  # rltrain's GRPO: each completion's tokens averaged, then the batch
            logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", seed=0,
            lr_scheduler_type="constant", warmup_steps=0,
        )  # fmt: skip
        data = Dataset.from_list([{"prompt": PROMPTS[i % len(PROMPTS)]} for i in range(4096)])
        trainer = GRPOTrainer(model=policy, reward_funcs=[cat], args=config,
                              train_dataset=data, processing_class=tokenizer)  # fmt: skip
        trainer.add_callback(Clock())
        trainer.train()
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history
               if "completions/mean_length" in h]  # fmt: skip
    tokens = sum(lengths[warmup:]) * GROUP * PER_STEP
    return {"tokens": tokens, "tokens_s": tokens / (marks[-1] - marks[warmup - 1]),
            "peak_mb": peak_mb()}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    run = run_rltrain if args.child == "rltrain" else run_trl
    print("RESULT " + json.dumps(run(Path(args.model), Path(args.prompts), args.steps,
                                     args.warmup)))  # fmt: skip


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--child", choices=["rltrain", "trl"])
    parser.add_argument("--model")
    parser.add_argument("--prompts")
    args, _ = parser.parse_known_args()
    if args.child:
        child(args)
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp), args.width, args.layers)
        prompts = Path(tmp) / "prompts.txt"
        prompts.write_text("\n".join(PROMPTS) + "\n")
        results = {}
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
        for side in ("rltrain", "trl"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", side, "--model", str(model), "--prompts",
                 str(prompts), "--steps", str(args.steps), "--warmup", str(args.warmup)],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
            results[side] = json.loads(line[-1][len("RESULT ") :])
            print(side, results[side], flush=True)  # the raw figures, tokens included
    r, t = results["rltrain"], results["trl"]
    report = (
        f"### GRPO on a {args.layers}-layer GPT-2 of width {args.width}: rltrain vs TRL, "
        f"{args.steps} steps after {args.warmup}, 1 thread each\n\n"
        "| | tokens/s (whole step) | generation tokens/s | update tokens/s | peak memory MB |\n"
        "|---|---:|---:|---:|---:|\n"
        f"| rltrain | {r['tokens_s']:,.0f} | {r['gen_tokens_s']:,.0f} | "
        f"{r['update_tokens_s']:,.0f} | {r['peak_mb']:,.0f} |\n"
        f"| TRL {version('trl')} | {t['tokens_s']:,.0f} | - | - | {t['peak_mb']:,.0f} |\n"
        f"| ratio | {r['tokens_s'] / t['tokens_s']:.2f}x | | | "
        f"{r['peak_mb'] / t['peak_mb']:.2f}x |"
    )
    print(report, flush=True)
    return report


def version(package: str) -> str:
    from importlib.metadata import version as installed

    return installed(package)


if __name__ == "__main__":
    main()
