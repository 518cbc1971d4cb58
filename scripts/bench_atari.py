"""Atari: raw env throughput per backend, and PPO / DQN training beside Stable-Baselines3.

    python scripts/bench_atari.py                        # env table + PPO and DQN, 1 repeat
    python scripts/bench_atari.py --only-train ppo --steps 20000 --repeats 3
    python scripts/bench_atari.py --skip-train           # the raw env table only
    python scripts/bench.py --only atari                 # through `make bench`
    python scripts/bench_atari.py --device cuda          # training on a GPU (both sides)
    python scripts/bench_atari.py --conv-dtype bfloat16  # rltrain's convolutions in bfloat16

The issue's measurement (30k steps, Breakout, median of 3) is
`python scripts/bench_atari.py --steps 30000 --repeats 3`: on 2 CPU cores about 18 minutes per
repeat (PPO about 2.5 min per side, DQN about 6 min per side with learning_starts 5,000, the env
table about a minute), so about 55 minutes in all; `--repeats 1` for a quick look.

1. Raw env: agent steps/s per backend with random actions (scripts/bench_atari_env.py).
2. Training, Breakout, same settings on both sides, each run its own process, rltrain and SB3
   interleaved so drifts in machine load hit both alike:
   - PPO with the RL Zoo Atari settings (rltrain/tuned/ppo_atari.yaml; SB3: `make_atari_env` +
     `VecFrameStack(4)`, CnnPolicy, 8 envs x 128 steps, 4 epochs, batch 256, lr lin 2.5e-4,
     clip lin 0.1, ent 0.01, vf 0.5);
   - DQN with the RL Zoo Atari settings (rltrain/tuned/dqn_atari.yaml; SB3: buffer 1e5 with
     optimize_memory_usage), but `learning_starts` lowered to `--learning-starts` for both so a
     short run is mostly learning.
   rltrain runs with env.repeat_action_probability=0 (SB3's `BreakoutNoFrameskip-v4`, no sticky
   actions). Periodic and final evaluations are switched off on both sides (rltrain's
   `evaluate` is stubbed in the child), so only training is timed.

Each child splits its training time, wall clock and CPU (`time.process_time()`: every thread of
the process, the ALE's C++ threads included), into env stepping (the vector env's step),
acting (the rest of the rollout / acting phase: network forward, sampling, buffer writes) and
updates (the update phase: replay sampling, losses, backward, optimizer), by wrapping methods
from here: no timing code lives in rltrain or SB3. CPU time per agent step is the robust number
on a shared machine; wall-clock steps/s need a quiet one.

Threads: both sides use the same torch thread count (`--threads`, default every core, which is
what rltrain picks for CNNs and SB3 gets from torch). The children run with
`OMP_WAIT_POLICY=PASSIVE` unless `--omp-default`: on a loaded machine, OpenMP threads that
spin-wait for a busy core made a batch-8 Nature-CNN forward 40x slower here (3 ms -> 127 ms of
CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

GAME = "breakout"
SB3_ID = "BreakoutNoFrameskip-v4"
PHASES = ("env", "act", "update", "other")


# ------------------------------------------------------------------------------------ timers
@dataclass
class Timers:
    """Wall and CPU seconds accumulated per key by wrapped methods."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    first: tuple[float, float] | None = None  # (wall, cpu) when the first timed call started
    last: tuple[float, float] | None = None  # (wall, cpu) when the last timed call ended
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)

    def wrap(self, owner: Any, name: str, key: str, span: bool = False) -> None:
        """Replace `owner.name` (a class or an instance) with a timed version of itself.

        span=True also records the start of the first call and the end of the last one (the
        training span, logging between iterations included).
        """
        original: Callable[..., Any] = getattr(owner, name)
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            if span and timers.first is None:
                timers.first = (wall, cpu)
            try:
                return original(*args, **kwargs)
            finally:
                end_wall, end_cpu = time.perf_counter(), time.process_time()
                timers.wall[key] = timers.wall.get(key, 0.0) + end_wall - wall
                timers.cpu[key] = timers.cpu.get(key, 0.0) + end_cpu - cpu
                if span:
                    timers.last = (end_wall, end_cpu)

        setattr(owner, name, timed)

    def mark(self, name: str) -> None:
        self.marks[name] = (time.perf_counter(), time.process_time())

    def report(self, steps: int, steps_before_mark: int | None, mark: str) -> dict[str, Any]:
        """Totals over the training span and its split into PHASES (wall and CPU seconds)."""
        assert self.first is not None and self.last is not None
        total_wall = self.last[0] - self.first[0]
        total_cpu = self.last[1] - self.first[1]
        out: dict[str, Any] = {"steps": steps, "wall": total_wall, "cpu": total_cpu}
        for kind, acc, total in (("wall", self.wall, total_wall), ("cpu", self.cpu, total_cpu)):
            env = acc.get("env", 0.0)
            act = acc.get("collect", 0.0) - env
            update = acc.get("iterate", 0.0) - acc.get("collect", 0.0)
            if "update" in acc and "iterate" not in acc:
                update = acc["update"]
            out[f"{kind}_split"] = {
                "env": env,
                "act": act,
                "update": update,
                "other": total - env - act - update,
            }
        if steps_before_mark is not None and mark in self.marks:
            wall, cpu = self.marks[mark]
            out["after_mark"] = {
                "steps": steps - steps_before_mark,
                "wall": self.last[0] - wall,
                "cpu": self.last[1] - cpu,
            }
        out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        return out


# ----------------------------------------------------------------------------- the children
def rltrain_overrides(
    algo: str, steps: int, learning_starts: int, threads: int, device: str = "cpu",
    conv_dtype: str = "float32",
) -> list[str]:
    common = [
        f"algo={algo}",
        "env=atari",
        f"env.game={GAME}",
        f"total_steps={steps}",
        "env.repeat_action_probability=0.0",
        "eval_interval=0",
        "eval_episodes=1",
        "checkpoint_interval=0",
        "logger.progress=none",
        f"device={device}",
        f"device.threads={threads}",
        f"network.conv_dtype={conv_dtype}",
    ]
    if algo == "dqn":
        common += [f"algo.learning_starts={learning_starts}", "algo.checkpoint_buffer=false"]
    return common


def child_rltrain(
    algo: str, steps: int, learning_starts: int, threads: int, seed: int, device: str,
    conv_dtype: str = "float32",
) -> dict:
    import numpy as np

    import rltrain.runner.loop as loop
    from rltrain.algos.dqn import DQN
    from rltrain.algos.ppo import PPO
    from rltrain.config.store import compose_run_config
    from rltrain.envs.atari import NativeAtariVecEnv

    timers = Timers()
    timers.wrap(NativeAtariVecEnv, "step", "env")
    if algo == "ppo":
        timers.wrap(PPO, "collect", "collect")
        timers.wrap(PPO, "iterate", "iterate", span=True)
    else:
        timers.wrap(DQN, "_env_step", "collect")
        timers.wrap(DQN, "iterate", "iterate", span=True)
        original_env_step = DQN._env_step

        def env_step(self: DQN, step: int) -> None:
            if step >= learning_starts and "learning" not in timers.marks:
                timers.mark("learning")
            original_env_step(self, step)

        DQN._env_step = env_step  # type: ignore[method-assign]
    # training only: no evaluation games (SB3's side has none either)
    loop.evaluate = lambda *args, **kwargs: np.zeros(1)  # type: ignore[assignment]
    overrides = [
        *rltrain_overrides(algo, steps, learning_starts, threads, device, conv_dtype),
        f"seed={seed}",
    ]
    node = compose_run_config(overrides)
    with tempfile.TemporaryDirectory(prefix="bench-atari-") as run_dir:
        loop.train(node, Path(run_dir))
    return timers.report(steps, learning_starts if algo == "dqn" else None, "learning")


def child_sb3(
    algo: str, steps: int, learning_starts: int, threads: int, seed: int, device: str,
    conv_dtype: str = "float32",
) -> dict:
    del conv_dtype  # SB3 has no such option: its side is always float32
    import ale_py
    import gymnasium as gym
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

    gym.register_envs(ale_py)
    torch.set_num_threads(threads)

    def linear(start: float) -> Callable[[float], float]:  # RL Zoo's "lin_<x>"
        return lambda progress_remaining: progress_remaining * start

    timers = Timers()
    if algo == "ppo":
        # rl-baselines3-zoo hyperparams/ppo.yml, "atari"
        env = VecFrameStack(make_atari_env(SB3_ID, n_envs=8, seed=seed), 4)
        model: Any = sb3.PPO(
            "CnnPolicy", env, n_steps=128, n_epochs=4, batch_size=256,
            learning_rate=linear(2.5e-4), clip_range=linear(0.1), vf_coef=0.5, ent_coef=0.01,
            seed=seed, device=device, verbose=0,
        )  # fmt: skip
    else:
        # rl-baselines3-zoo hyperparams/dqn.yml, "atari", learning_starts lowered
        env = VecFrameStack(make_atari_env(SB3_ID, n_envs=1, seed=seed), 4)
        model = sb3.DQN(
            "CnnPolicy", env, buffer_size=100_000, learning_rate=1e-4, batch_size=32,
            learning_starts=learning_starts, target_update_interval=1000, train_freq=4,
            gradient_steps=1, exploration_fraction=0.1, exploration_final_eps=0.01,
            optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False},
            seed=seed, device=device, verbose=0,
        )  # fmt: skip
    vec: VecEnv = model.get_env()  # VecTransposeImage(VecFrameStack(DummyVecEnv))
    timers.wrap(vec, "step_wait", "env")
    timers.wrap(model, "collect_rollouts", "collect", span=True)
    timers.wrap(model, "train", "update", span=True)
    if algo == "dqn":
        original_collect = model.collect_rollouts

        def collect(*args: Any, **kwargs: Any) -> Any:
            if model.num_timesteps >= learning_starts and "learning" not in timers.marks:
                timers.mark("learning")
            return original_collect(*args, **kwargs)

        model.collect_rollouts = collect
    model.learn(total_timesteps=steps)
    return timers.report(steps, learning_starts if algo == "dqn" else None, "learning")


# ---------------------------------------------------------------------------------- parent
def run_child(side: str, algo: str, args: argparse.Namespace, seed: int) -> dict:
    env = dict(os.environ)
    if not args.omp_default:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # no CUDA initialisation in a CPU measurement
    command = [
        sys.executable, __file__, "--child", side, "--algo", algo, "--steps", str(args.steps),
        "--learning-starts", str(args.learning_starts), "--threads", str(args.threads),
        "--seed", str(seed), "--device", args.device, "--conv-dtype", args.conv_dtype,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail[:200]}
    data: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def training_table(algo: str, runs: dict[str, list[dict]], args: argparse.Namespace) -> str:
    title = {
        "ppo": "PPO, RL Zoo Atari settings (8 envs x 128, 4 epochs, batch 256)",
        "dqn": f"DQN, RL Zoo Atari settings, buffer 1e5, learning_starts {args.learning_starts:,}",
    }[algo]
    lines = [
        f"## Training: {title}, Breakout, {args.steps:,} steps, {args.threads} torch threads, "
        f"device {args.device}, rltrain network.conv_dtype={args.conv_dtype} (SB3: float32)",
        "",
        "| run | steps/s (wall) | CPU ms / step | "
        + ("steps/s after learning starts | CPU ms / step after | " if algo == "dqn" else "")
        + "env | act | update | other | peak RSS |",
        "|---|---|---|" + ("---|---|" if algo == "dqn" else "") + "---|---|---|---|---|",
    ]
    medians: dict[str, dict[str, float]] = {}
    for side, results in runs.items():
        good = [r for r in results if "error" not in r]
        for r in results:
            if "error" in r:
                lines.append(f"| {side} | failed: {r['error']} |")
        if not good:
            continue
        sps = _median([r["steps"] / r["wall"] for r in good])
        cpu_ms = _median([1e3 * r["cpu"] / r["steps"] for r in good])
        medians[side] = {"sps": sps, "cpu_ms": cpu_ms}
        row = f"| {side} ({len(good)} runs) | {sps:,.0f} | {cpu_ms:.2f} | "
        if algo == "dqn":
            after = [r["after_mark"] for r in good if "after_mark" in r]
            a_sps = _median([a["steps"] / a["wall"] for a in after])
            a_cpu = _median([1e3 * a["cpu"] / a["steps"] for a in after])
            medians[side].update({"after_sps": a_sps, "after_cpu_ms": a_cpu})
            row += f"{a_sps:,.0f} | {a_cpu:.2f} | "
        # the split of CPU time per agent step, median over runs
        parts = []
        for phase in PHASES:
            ms = _median([1e3 * r["cpu_split"][phase] / r["steps"] for r in good])
            share = _median([r["cpu_split"][phase] / r["cpu"] for r in good])
            parts.append(f"{ms:.2f} ms ({share:.0%})")
        row += " | ".join(parts)
        row += f" | {_median([r['peak_rss_gb'] for r in good]):.2f} GB |"
        lines.append(row)
    ours, theirs = medians.get("rltrain"), medians.get("SB3")
    if ours and theirs:
        lines.append("")
        lines.append(
            f"rltrain / SB3: wall steps/s {ours['sps'] / theirs['sps']:.2f}x, "
            f"CPU time per step {theirs['cpu_ms'] / ours['cpu_ms']:.2f}x"
            + (
                f"; after learning starts: wall {ours['after_sps'] / theirs['after_sps']:.2f}x, "
                f"CPU {theirs['after_cpu_ms'] / ours['after_cpu_ms']:.2f}x"
                if algo == "dqn"
                else ""
            )
        )
    lines.append("")
    lines.append(
        "env / act / update / other: CPU time per agent step and its share (env: the vector "
        "env's step; act: the rest of the rollout or acting phase; update: the update phase; "
        "other: logging and the loop)."
    )
    return "\n".join(lines)


def env_table(args: argparse.Namespace) -> str:
    import numpy as np
    from bench_atari_env import run_once

    from rltrain.envs.atari import AtariConfig

    lines = [
        f"## Raw env throughput: {GAME}, {args.env_envs} envs, random actions, no sticky "
        "actions, 84x84x4, frame skip 4",
        "",
        "| backend | agent steps/s median (min-max) | CPU us / step |",
        "|---|---|---|",
    ]
    for backend in ("native", "sync", "async"):
        cfg = AtariConfig(game=GAME, backend=backend, repeat_action_probability=0.0)
        runs = [run_once(cfg, args.env_envs, args.env_steps, s) for s in range(args.repeats)]
        sps = sorted(r[0] for r in runs)
        cpu_us = 1e6 * float(np.median([r[1] for r in runs]))
        lines.append(
            f"| {backend} | {np.median(sps):,.0f} ({sps[0]:,.0f}-{sps[-1]:,.0f}) | {cpu_us:,.0f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30_000, help="training env steps per run")
    parser.add_argument("--learning-starts", type=int, default=5_000, help="DQN, both sides")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only-train", default="ppo,dqn", help="comma-separated: ppo,dqn")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-env", action="store_true")
    parser.add_argument("--env-envs", type=int, default=8)
    parser.add_argument("--env-steps", type=int, default=1500, help="vector steps per env run")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="training device, both sides"
    )
    parser.add_argument(
        "--conv-dtype", choices=["float32", "bfloat16"], default="float32",
        help="rltrain's network.conv_dtype (SB3 stays float32)",
    )
    parser.add_argument("--omp-default", action="store_true", help="keep OpenMP's spin-waiting")
    parser.add_argument("--child", choices=["rltrain", "sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--algo", choices=["ppo", "dqn"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    return args


def main() -> str:
    args = parse()
    if args.child:
        child = child_rltrain if args.child == "rltrain" else child_sb3
        print(json.dumps(child(args.algo, args.steps, args.learning_starts, args.threads,
                               args.seed, args.device, args.conv_dtype)))  # fmt: skip
        return ""
    parts = []
    if not args.skip_env:
        parts.append(env_table(args))
    if not args.skip_train:
        for algo in [a for a in args.only_train.split(",") if a]:
            runs: dict[str, list[dict]] = {"rltrain": [], "SB3": []}
            for seed in range(args.repeats):  # interleaved: load drifts hit both alike
                for side, name in (("rltrain", "rltrain"), ("sb3", "SB3")):
                    runs[name].append(run_child(side, algo, args, seed))
                    print(f"{algo} {name} seed {seed}: {json.dumps(runs[name][-1])}", flush=True)
            parts.append(training_table(algo, runs, args))
            print(parts[-1], flush=True)
    load = os.getloadavg()
    parts.append(
        f"Load average during the bench: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
        f"{os.cpu_count()} cores. Wall-clock columns are only meaningful on a quiet machine; "
        "CPU ms per step is the comparable number on a shared one."
    )
    report = "\n\n".join(parts)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
