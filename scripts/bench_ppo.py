"""PPO on CartPole-v1: rltrain vs Stable-Baselines3, RL Zoo settings, 3 seeds each."""

from __future__ import annotations

import argparse

from benchlib import run_rltrain, run_sb3, table


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args, _ = parser.parse_known_args()
    ours, theirs = [], []
    for seed in range(args.seeds):  # interleaved, so drifts in machine load hit both alike
        ours.append(run_rltrain("rltrain PPO", ["algo=ppo", "env=cartpole"], seed, 475.0))
        theirs.append(run_sb3("SB3 PPO", "ppo", "CartPole-v1", seed, 475.0, "ppo_cartpole"))
    report = table("PPO CartPole-v1 (RL Zoo settings, 1e5 steps)", ours, theirs)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
