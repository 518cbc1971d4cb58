"""Raw Atari env throughput per backend: agent steps/s with random actions (each step = 4 frames).

    python scripts/bench_atari_env.py [--game breakout] [--envs 8] [--steps 1500] [--repeats 3]

Prints, per backend, the median (min-max) agent steps per second over `--repeats` runs of
`--steps` vector steps (after a short warm-up), and the training terminals and whole games ended
per 1000 agent steps, which should agree across backends (same episode semantics).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rltrain.envs.atari import AtariConfig, make_atari_vec_env


def run_once(cfg: AtariConfig, num_envs: int, steps: int, seed: int) -> tuple[float, int, int]:
    """Returns (agent steps/s, training terminals, whole games) for one timed run."""
    env = make_atari_vec_env(cfg, num_envs, seed=seed, training=True)
    rng = np.random.default_rng(seed)
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    actions = rng.integers(0, n_actions, size=(steps + 20, num_envs))
    env.reset(seed=seed)
    for t in range(20):  # warm-up: worker start, first allocations
        env.step(actions[t])
    env.pop_episodes()
    terminals = 0
    start = time.perf_counter()
    for t in range(20, steps + 20):
        terminals += int(env.step(actions[t]).terminated.sum())
    elapsed = time.perf_counter() - start
    games = len(env.pop_episodes()[0])
    env.close()
    return steps * num_envs / elapsed, terminals, games


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
        f"{'backend':<8} {'steps/s median':>14} {'(min-max)':>17} {'terms/1k':>9} {'games/1k':>9}"
    )
    print(header)
    print("-" * len(header))
    for backend in args.backends.split(","):
        cfg = AtariConfig(game=args.game, backend=backend, repeat_action_probability=args.sticky)
        runs = [run_once(cfg, args.envs, args.steps, seed) for seed in range(args.repeats)]
        sps = sorted(r[0] for r in runs)
        agent_steps = args.steps * args.envs * args.repeats
        terms = 1000 * sum(r[1] for r in runs) / agent_steps
        games = 1000 * sum(r[2] for r in runs) / agent_steps
        spread = f"({sps[0]:,.0f}-{sps[-1]:,.0f})"
        print(f"{backend:<8} {np.median(sps):>14,.0f} {spread:>17} {terms:>9.2f} {games:>9.2f}")


if __name__ == "__main__":
    main()
