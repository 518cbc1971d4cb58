"""Plot clicks per session over training of groups of recommender runs (features view) against
the env's random, greedy and optimal baselines, one panel per group, from TensorBoard events.

    python scripts/plot_recommender.py --run "DQN=runs/rec/dqn_seed*" \
        --run "PPO=runs/rec/ppo_seed*" --out docs/recommender_clicks.png

The curve is `eval/return_exact` (the deterministic policy scored exactly on the simulator's
model); `--tag eval/return_mean` plots the sampled evaluation instead. Thin lines are single runs,
the thick line their mean; the baselines are the `eval/baseline_*` values the runs logged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from plot_q_bias import parse_group, read_curve  # scripts/ is on sys.path when run as a script

BASELINES = {"optimal": ("black", "-"), "greedy": ("tab:red", "--"), "random": ("gray", ":")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=GLOB (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("docs/recommender_clicks.png"))
    parser.add_argument("--tag", default="eval/return_exact")
    args = parser.parse_args()
    groups = [parse_group(text) for text in args.run]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.2), dpi=110,
                             squeeze=False, sharey=True)  # fmt: skip
    for i, (ax, (label, dirs)) in enumerate(zip(axes[0], groups, strict=True)):
        color = plt.rcParams["axes.prop_cycle"].by_key()["color"][i]
        curves = [read_curve(d, args.tag) for d in dirs]
        for curve in curves:
            ax.plot(curve.steps, curve.values, color=color, alpha=0.3, linewidth=0.8)
        grid = np.unique(np.concatenate([c.steps for c in curves]))
        mean = np.mean([np.interp(grid, c.steps, c.values) for c in curves], axis=0)
        best = np.mean([c.values.max() for c in curves])
        ax.plot(grid, mean, color=color, linewidth=2.0,
                label=f"{label}, {len(curves)} seeds (best {best:.1f})")  # fmt: skip
        for name, (line_color, style) in BASELINES.items():
            value = float(read_curve(dirs[0], f"eval/baseline_{name}").values[-1])
            ax.axhline(value, color=line_color, linestyle=style, linewidth=1.0,
                       label=f"{name} {value:.1f}")  # fmt: skip
        ax.set_xlabel("environment steps")
        ax.set_title(f"{label} on env=recommender env.view=features", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
        print(f"{label}: best per seed " + ", ".join(f"{c.values.max():.2f}" for c in curves))
    axes[0][0].set_ylabel(f"clicks per session ({args.tag})")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
