#!/usr/bin/env bash
# Atari learning check, run by hand (hours of CPU; not part of any test suite):
# PPO with the tuned Atari preset (rltrain/tuned/ppo_atari.yaml) on Pong must improve by at least
# 5 points from where a random policy starts (about -21), on a CPU, within 2M env steps.
#
#   scripts/pong_learning_check.sh [OUT_DIR [OVERRIDE ...]]   # default OUT_DIR: runs/pong_check
#   STEPS=1200000 taskset -c 1 scripts/pong_learning_check.sh /tmp/pong device.threads=1
#
# Budget: STEPS env steps (default 2,000,000; 1,024 per PPO rollout of 8 envs x 128 steps), the
# preset's schedules annealed over them (total_steps sets the horizon), an evaluation every
# STEPS / 8 steps (5 whole games, epsilon 0.05).
#
# Result (2026-12-01, docs/pong_ppo_cpu.png): STEPS=1200000 on one CPU core (taskset -c 1,
# device.threads=1), seed 0, sticky actions 0.25: 4,536 s at 266 steps/s; the first 20 games
# average -20.3, the last 20 -14.1 (+6.2 points: PASS); evaluations went from -21.0 (150k steps)
# to -14.2 (1.2M).
#
# Then the curve is drawn to docs/pong_ppo_cpu.png (training returns of whole games, raw score,
# with the evaluation means), and the script prints PASS when the mean of the last 20 training
# games is at least 5 points above the mean of the first 20.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/pong_check}"
shift || true
STEPS="${STEPS:-2000000}"
PYTHON="${PYTHON:-.venv/bin/python}"
RLTRAIN="${RLTRAIN:-.venv/bin/rltrain}"

"$RLTRAIN" algo=ppo env=atari env.game=pong device=cpu seed=0 \
  "total_steps=$STEPS" "eval_interval=$((STEPS / 8))" eval_episodes=5 \
  logger.progress=lines "hydra.run.dir=$OUT" "$@"

"$PYTHON" - "$OUT" <<'EOF'
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = Path(sys.argv[1])
acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
acc.Reload()
train = [(e.step, e.value) for e in acc.Scalars("charts/episodic_return")]
evals = [(e.step, e.value) for e in acc.Scalars("eval/return_mean")]
steps = np.array([s for s, _ in train])
returns = np.array([r for _, r in train])
window = 20
smooth = np.convolve(returns, np.ones(window) / window, mode="valid")

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(steps, returns, ".", ms=2, alpha=0.3, label="training game (raw score)")
ax.plot(steps[window - 1 :], smooth, label=f"mean of last {window} games")
if evals:
    ax.plot(*zip(*evals), "o-", label="evaluation, 5 games, epsilon 0.05")
ax.set_xlabel("environment steps")
ax.set_ylabel("Pong score")
ax.set_title(f"rltrain PPO on Pong, tuned preset, CPU, {int(steps[-1]):,} steps")
ax.legend(loc="lower right")
ax.grid(alpha=0.3)
fig.tight_layout()
Path("docs").mkdir(exist_ok=True)
fig.savefig("docs/pong_ppo_cpu.png", dpi=120)

first, last = returns[:window].mean(), returns[-window:].mean()
verdict = "PASS" if last - first >= 5 else "FAIL"
print(f"first {window} games {first:.1f}, last {window} games {last:.1f}: "
      f"{last - first:+.1f} points -> {verdict}; curve in docs/pong_ppo_cpu.png")
sys.exit(0 if verdict == "PASS" else 1)
EOF
