"""Raw Atari env throughput per backend: agent steps/s with random actions (each step = 4 frames).

    python scripts/bench_atari_env.py [--game breakout] [--envs 8] [--steps 1500] [--repeats 3]

Prints, per backend, the median (min-max) agent steps per second over `--repeats` runs of
`--steps` vector steps (after a short warm-up); the CPU time per agent step (this process, its
threads and, for async, its worker processes), which is less sensitive to other load on the
machine than wall time; and the training terminals and whole games ended per 1000 agent steps,
which should agree across backends (same episode semantics).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from rltrain.config.envs import AtariConfig
from rltrain.envs.atari import make_atari_vec_env


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of this process (all threads) and of the given live children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def run_once(
    cfg: AtariConfig, num_envs: int, steps: int, seed: int
) -> tuple[float, float, int, int]:
    """Returns (agent steps/s, CPU s per agent step, training terminals, whole games)."""
    env = make_atari_vec_env(cfg, num_envs, seed=seed, training=True)
    workers = [p.pid for p in getattr(getattr(env, "env", None), "processes", [])]
    rng = np.random.default_rng(seed)
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    actions = rng.integers(0, n_actions, size=(steps + 20, num_envs))
    env.reset(seed=seed)
    for t in range(20):  # warm-up: worker start, first allocations
        env.step(actions[t])
    env.pop_episodes()
    terminals = 0
    cpu = cpu_seconds(workers)
    start = time.perf_counter()
    for t in range(20, steps + 20):
        terminals += int(env.step(actions[t]).terminated.sum())
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(workers) - cpu
    games = len(env.pop_episodes()[0])
    env.close()
    agent_steps = steps * num_envs
    return agent_steps / elapsed, cpu / agent_steps, terminals, games


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="breakout")
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1500, help="vector steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sticky", type=float, default=0.0, help="repeat_action_probability")
    parser.add_argument("--backends", default="native,sync,async")
    args = parser.parse_args()

    print(
        f"{args.game}, {args.envs} envs, {args.steps} vector steps x {args.repeats}, "
        f"random actions, sticky={args.sticky}, 84x84x4, frame skip 4"
    )
    header = (
        f"{'backend':<8} {'steps/s median':>14} {'(min-max)':>17} {'CPU us/step':>12} "
        f"{'terms/1k':>9} {'games/1k':>9}"
    )
    print(header)
    print("-" * len(header))
    for backend in args.backends.split(","):
        cfg = AtariConfig(game=args.game, backend=backend, repeat_action_probability=args.sticky)
        runs = [run_once(cfg, args.envs, args.steps, seed) for seed in range(args.repeats)]
        sps = sorted(r[0] for r in runs)
        agent_steps = args.steps * args.envs * args.repeats
        cpu_us = 1e6 * float(np.median([r[1] for r in runs]))
        terms = 1000 * sum(r[2] for r in runs) / agent_steps
        games = 1000 * sum(r[3] for r in runs) / agent_steps
        spread = f"({sps[0]:,.0f}-{sps[-1]:,.0f})"
        print(
            f"{backend:<8} {np.median(sps):>14,.0f} {spread:>17} {cpu_us:>12,.0f} "
            f"{terms:>9.2f} {games:>9.2f}"
        )


if __name__ == "__main__":
    main()
