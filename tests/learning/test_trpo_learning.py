"""TRPO learns with its presets (rltrain/tuned/trpo_*.yaml): CartPole-v1 solved (deterministic
10-episode eval >= 475) for seeds 0-2, Pendulum-v1 past -300 (seed 0).

Slow: `python -m pytest -m slow -s tests/learning/test_trpo_learning.py`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rltrain.config.store import compose_run_config
from rltrain.runner.loop import train

pytestmark = pytest.mark.slow


def run(env: str, seed: int, run_dir: Path) -> float:
    cfg = compose_run_config(
        ["algo=trpo", f"env={env}", f"seed={seed}", "device=cpu", "logger.progress=none"]
    )
    assert cfg.preset == f"trpo_{env}"
    start = time.time()
    eval_return = train(cfg, run_dir)
    steps = json.loads((run_dir / "summary.json").read_text())["steps"]
    print(f"\ntrpo/{env} seed {seed}: eval {eval_return:.1f}; {steps:,} steps in "
          f"{time.time() - start:.0f} s", flush=True)  # fmt: skip
    return eval_return


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trpo_solves_cartpole(seed: int, tmp_path: Path) -> None:
    assert run("cartpole", seed, tmp_path) >= 475


def test_trpo_reaches_minus_300_on_pendulum(tmp_path: Path) -> None:
    assert run("pendulum", 0, tmp_path) >= -300
