"""Draw the Pong learning curves of several runs on one figure (mean of the last 20 games).

    .venv/bin/python scripts/plot_pong_compare.py docs/pong_ppo_conv_dtype.png \\
        float32=/tmp/pong bfloat16=/tmp/pongbf/run

Prints, per run, the mean raw score of the first and of the last 20 training games and the
evaluations; used for the network.conv_dtype comparison in the README.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

WINDOW = 20


def main() -> None:
    out, runs = Path(sys.argv[1]), [arg.split("=", 1) for arg in sys.argv[2:]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in runs:
        acc = EventAccumulator(run, size_guidance={"scalars": 0})
        acc.Reload()
        train = acc.Scalars("charts/episodic_return")
        steps = np.array([e.step for e in train])
        returns = np.array([e.value for e in train])
        smooth = np.convolve(returns, np.ones(WINDOW) / WINDOW, mode="valid")
        ax.plot(steps[WINDOW - 1 :], smooth, label=f"{label}: mean of last {WINDOW} games")
        evals = [(e.step, e.value) for e in acc.Scalars("eval/return_mean")]
        print(
            f"{label}: {len(returns)} games, first {WINDOW} {returns[:WINDOW].mean():.1f}, "
            f"last {WINDOW} {returns[-WINDOW:].mean():.1f}; evaluations "
            + ", ".join(f"{v:.1f}@{s // 1000}k" for s, v in evals)
        )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("Pong score (raw)")
    ax.set_title("rltrain PPO on Pong, tuned preset, one CPU core, seed 0")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
