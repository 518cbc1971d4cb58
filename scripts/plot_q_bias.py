"""Plot `values/q_bias` (predicted Q(s,a) minus the discounted return that followed) of two or
more groups of runs from their TensorBoard event files, and print the mean over the second half
of training per run and per group.

    python scripts/plot_q_bias.py --run "DQN=runs/dqn_seed*" --run "Double DQN=runs/ddqn_seed*" \
        --tag values/q_bias --tag values/q_mean --bound 100 --out docs/q_bias_cartpole.png

Each `--run LABEL=GLOB` is a group (e.g. the seeds of one configuration); GLOB matches run
directories. Thin lines are single runs, the thick line their mean (on the union of logged steps,
each run interpolated). "Second half" means steps > total_steps / 2 (total_steps from the run's
summary.json, else its last logged step); `--late 0.25` takes the last quarter instead.

    python scripts/plot_q_bias.py --run "DDPG=runs/ddpg_pendulum/seed*" \
        --run "TD3=runs/td3_pendulum_s*" --tag values/q_bias --tag values/q_mean \
        --title Pendulum-v1 --late 0.25 --out docs/q_bias_pendulum.png
"""

from __future__ import annotations

import argparse
import glob
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Curve:
    run_dir: Path
    steps: np.ndarray
    values: np.ndarray
    total_steps: int

    def late_mean(self, late_fraction: float = 0.5) -> float:
        """Mean over the steps past (1 - late_fraction) of the budget (0.5: the second half)."""
        late = self.steps > self.total_steps * (1.0 - late_fraction)
        return float(self.values[late].mean()) if late.any() else float("nan")


def read_curve(run_dir: Path, tag: str) -> Curve:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    if tag not in accumulator.Tags()["scalars"]:
        raise SystemExit(f"{run_dir} has no '{tag}' scalars")
    events = sorted((e.step, e.value) for e in accumulator.Scalars(tag))
    steps = np.array([s for s, _ in events], dtype=np.int64)
    values = np.array([v for _, v in events], dtype=np.float64)
    summary = run_dir / "summary.json"
    total = int(json.loads(summary.read_text())["total_steps"]) if summary.is_file() else 0
    return Curve(run_dir, steps, values, total or int(steps.max()))


def parse_group(text: str) -> tuple[str, list[Path]]:
    label, sep, pattern = text.partition("=")
    if not sep:
        raise SystemExit(f"--run wants LABEL=GLOB, got {text!r}")
    dirs = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_dir())
    if not dirs:
        raise SystemExit(f"--run {label}: no run directories match {pattern!r}")
    return label, dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=GLOB (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("docs/q_bias_cartpole.png"))
    parser.add_argument(
        "--tag", action="append", help="scalar tag, one panel each (default values/q_bias)"
    )
    parser.add_argument(
        "--bound",
        type=float,
        help="dashed line on the panels other than q_bias, e.g. 100 = 1/(1-gamma), the largest "
        "discounted return of CartPole (reward 1 per step)",
    )
    parser.add_argument("--title", default="CartPole-v1")
    parser.add_argument(
        "--late", type=float, default=0.5,
        help="the table's means are over this last fraction of the budget (0.5: second half); "
        "off-policy runs that learn from step 10k of 20k want 0.25 to skip the warm-up's jump",
    )  # fmt: skip
    args = parser.parse_args()
    tags = args.tag or ["values/q_bias"]
    window = "second half of training" if args.late == 0.5 else f"last {args.late:g} of the budget"
    short = "2nd half" if args.late == 0.5 else f"last {args.late:g}"
    groups = [parse_group(text) for text in args.run]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tags), figsize=(6.5 * len(tags), 4.2), dpi=110, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lines: list[str] = []
    for ax, tag in zip(axes[0], tags, strict=True):
        lines += [f"mean {tag} over the {window}", ""]
        for i, (label, dirs) in enumerate(groups):
            curves = [read_curve(d, tag) for d in dirs]
            color = colors[i % len(colors)]
            for curve in curves:
                ax.plot(curve.steps, curve.values, color=color, alpha=0.25, linewidth=0.8)
            grid = np.unique(np.concatenate([c.steps for c in curves]))
            mean = np.mean([np.interp(grid, c.steps, c.values) for c in curves], axis=0)
            halves = [c.late_mean(args.late) for c in curves]
            group_mean = float(np.mean(halves))
            ax.plot(
                grid, mean, color=color, linewidth=2.0, label=f"{label} ({short} {group_mean:.1f})"
            )
            for curve, value in zip(curves, halves, strict=True):
                lines.append(f"  {label:<14} {curve.run_dir}: {value:8.2f}")
            lines.append(f"  {label:<14} mean of {len(curves)} runs: {group_mean:8.2f}")
        lines.append("")
        if tag == "values/q_bias":
            ax.axhline(0.0, color="black", linewidth=0.6)
            ax.set_ylabel("Q(s,a) - discounted return that followed")
        else:
            if args.bound is not None:
                ax.axhline(args.bound, color="black", linestyle="--", linewidth=0.8)
                ax.annotate(f"max possible {args.bound:g}", (0, args.bound), fontsize=8,
                            xytext=(4, 3), textcoords="offset points")  # fmt: skip
            ax.set_ylabel(tag)
        ax.set_xlabel("environment steps")
        ax.set_title(f"{args.title}: {tag} (thin: single seeds)", fontsize=10)
        ax.legend(loc="best", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    lines.append(f"wrote {args.out}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
