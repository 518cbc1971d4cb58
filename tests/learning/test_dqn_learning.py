"""DQN solves CartPole-v1 with its tuned preset (rltrain/tuned/dqn_cartpole.yaml), seeds 0-2.

Slow (about 5-10 minutes per seed on 2 shared cores):
`python -m pytest -m slow tests/learning/test_dqn_learning.py`.

"Solved" is the CartPole-v1 threshold for a deterministic 10-episode evaluation (mean >= 475)
reached within the preset's step budget: the preset evaluates every 5000 steps and keeps that
policy in checkpoints/best.pt. The final policy is not asserted: DQN on CartPole oscillates
(a policy at 500 can collapse and recover within thousands of steps), which is why the preset
keeps the best one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from rltrain.config.store import compose_run_config
from rltrain.runner.loop import train


def compose_run(overrides: list[str]) -> DictConfig:
    return compose_run_config(overrides)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dqn_solves_cartpole_with_the_tuned_preset(seed: int, tmp_path: Path) -> None:
    cfg = compose_run(
        ["algo=dqn", "env=cartpole", f"seed={seed}", "device=cpu", "logger.progress=none"]
    )
    assert cfg.total_steps == 100_000 and cfg.eval_interval == 5000  # the preset applies
    train(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == summary["total_steps"]
    assert summary["best_eval_return"] >= 475.0, summary
    # the best policy is the one kept for the user
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert "q_net" in best["algo_state"]
