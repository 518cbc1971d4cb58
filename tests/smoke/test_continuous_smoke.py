"""SAC, TD3 and DDPG through the CLI with tiny budgets on Pendulum: a complete run directory,
the value tags each one promises (docs/metrics.md), and `rltrain eval` of a SAC checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINY = [
    "env=pendulum", "env.num_envs=1", "total_steps=600", "algo.learning_starts=100",
    "algo.batch_size=32", "network.hidden_sizes=[16]", "eval_episodes=1",
    "logger.log_interval=200", "checkpoint_interval=0", "device=cpu", "logger.progress=none",
]  # fmt: skip
VALUES = {"values/q_mean", "values/v_mean", "values/advantage_mean", "values/td_error"}
EXPECTED_TAGS = {
    "sac": VALUES | {"charts/ent_coef", "policy/entropy", "losses/ent_coef_loss"},
    "td3": VALUES | {"values/q_bias", "values/q_disagreement", "losses/policy_loss"},
    "ddpg": VALUES | {"values/q_bias", "losses/policy_loss"},
}


@pytest.mark.parametrize("algo", sorted(EXPECTED_TAGS))
def test_continuous_algo_trains_logs_its_values_and_evaluates(
    algo: str, run_cli: Callable[..., Any], workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]], summary_of: Callable[[Path], dict],
    tb_scalars: Callable[[Path], dict],
) -> None:  # fmt: skip
    result = run_cli([f"algo={algo}", *TINY], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    summary = summary_of(run_dir)
    assert summary["steps"] == 600
    assert np.isfinite(summary["eval_return_mean"])
    scalars = tb_scalars(run_dir)
    missing = EXPECTED_TAGS[algo] - set(scalars)
    assert not missing, f"missing tags {missing}; have {sorted(scalars)}"
    if algo == "ddpg":  # one critic: nothing to disagree
        assert "values/q_disagreement" not in scalars
    if algo == "sac":  # alpha starts at 1 and is learned (ent_coef=auto)
        alphas = [value for _, value in scalars["charts/ent_coef"]]
        assert all(0 < a < 1 for a in alphas), alphas
        # one evaluation from the checkpoint (the actor is shared code for the three)
        evaluated = run_cli(["eval", str(run_dir), "--episodes", "1"], workdir)
        assert evaluated.returncode == 0, evaluated.stderr
