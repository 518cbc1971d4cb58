"""A2C on CartPole-v1: rltrain vs Stable-Baselines3, RL Zoo settings, 3 seeds each.

Both sides use RL Zoo's a2c.yml CartPole-v1 entry (8 envs, 5e5 steps, ent_coef 0.0, SB3 defaults
otherwise: n_steps 5, RMSprop lr 7e-4); rltrain gets it from rltrain/tuned/a2c_cartpole.yaml.
"""

from __future__ import annotations

import argparse

from benchlib import run_rltrain, run_sb3, table


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args, _ = parser.parse_known_args()
    ours, theirs = [], []
    for seed in range(args.seeds):  # interleaved, so drifts in machine load hit both alike
        ours.append(run_rltrain("rltrain A2C", ["algo=a2c", "env=cartpole"], seed, 475.0))
        theirs.append(run_sb3("SB3 A2C", "a2c", "CartPole-v1", seed, 475.0, "a2c_cartpole"))
    report = table("A2C CartPole-v1 (RL Zoo settings, 5e5 steps)", ours, theirs)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
