"""Plot token-level PPO beside GRPO on one env=text task: the exact objective against J* and
the reference's, the KL to the optimum, and PPO's value error against Q*, over training.

    RLTRAIN_TEST_RUNS=runs/text make test-slow   # or run the presets yourself, then:
    python scripts/plot_text_learning.py --run "PPO=runs/text/ppo_sort_*" \\
        --run "GRPO=runs/text/grpo_sort_*" --out docs/text_learning.png

Thin lines are single runs, thick lines their mean; every value is computed exactly over the
task's token tree by the run's oracle (charts/objective*, policy/kl_to_optimal,
values/q_error_vs_optimal), so the curves carry no sampling noise beyond training's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from plot_q_bias import Curve, parse_group, read_curve  # scripts/ is on sys.path as a script

PANELS = (
    ("charts/objective", "objective E[R] - beta KL"),
    ("policy/kl_to_optimal", "KL(pi || pi*) per completion"),
    ("values/q_error_vs_optimal", "value head: |Q - Q*|, on-policy"),
)


def _curves(dirs: list[Path], tag: str) -> list[Curve] | None:
    try:
        return [read_curve(d, tag) for d in dirs]
    except SystemExit:  # GRPO trains no value head, so logs no value error
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=GLOB (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("docs/text_learning.png"))
    args = parser.parse_args()
    groups = [parse_group(text) for text in args.run]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), 4.0), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (tag, title) in zip(axes, PANELS, strict=True):
        for color, (label, dirs) in zip(colors, groups, strict=False):
            curves = _curves(dirs, tag)
            if curves is None:
                continue
            for curve in curves:
                ax.plot(curve.steps, curve.values, color=color, alpha=0.3, linewidth=0.8)
            grid = np.unique(np.concatenate([c.steps for c in curves]))
            mean = np.mean([np.interp(grid, c.steps, c.values) for c in curves], axis=0)
            ax.plot(grid, mean, color=color, linewidth=2.0,
                    label=f"{label}, {len(curves)} seeds (last {mean[-1]:.3f})")  # fmt: skip
        if tag == "charts/objective":
            first = groups[0][1][0]
            for name, style in (("optimal", "-"), ("reference", ":")):
                value = float(read_curve(first, f"charts/objective_{name}").values[-1])
                label = "J*" if name == "optimal" else "J of the reference"
                ax.axhline(value, color="black", linestyle=style, linewidth=1.0,
                           label=f"{label} {value:.3f}")  # fmt: skip
        else:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generated tokens")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for label, dirs in groups:
        fractions = [read_curve(d, "charts/objective_fraction").values[-1] for d in dirs]
        print(f"{label}: (J - J_ref) / (J* - J_ref) at the end, per seed: "
              + ", ".join(f"{f:.3f}" for f in fractions))  # fmt: skip
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
