"""Learning on env=text: token-level PPO and GRPO, with their tuned presets, go at least 90% of
the way from the reference policy's objective to the exact KL-regularized optimum J* on every
built-in task, and PPO's value head approaches the optimum's soft Q*.

Through the installed console script, as a user runs them. With RLTRAIN_TEST_RUNS=DIR the runs
are kept in DIR/<algo>_<task>_<seed> (scripts/plot_text_learning.py draws docs/text_learning.png
from them); otherwise they go to pytest's tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

TASKS = ("sort", "reverse", "sum")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_token_rl_reaches_ninety_percent_of_the_optimum(
    algo: str, task: str, seed: int, run_cli: Any, tmp_path: Path, tb_scalars: Any,
    learning_run_dir: Any,
) -> None:
    run = learning_run_dir(f"{algo}_{task}_{seed}")
    args = [f"algo={algo}", "env=text", f"env.task={task}", f"seed={seed}",
            f"hydra.run.dir={run}"]  # fmt: skip
    result = run_cli(args, tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr
    assert f"preset: tuned/{algo}_text" in result.stdout + result.stderr
    scalars = tb_scalars(run)
    fraction = [value for _, value in scalars["charts/objective_fraction"]]
    optimum = scalars["charts/objective_optimal"][-1][1]
    reference = scalars["charts/objective_reference"][-1][1]
    assert optimum > reference  # the task leaves room to improve on the reference
    # (J - J_ref) / (J* - J_ref) of the final policy, computed exactly over the token tree
    assert fraction[-1] >= 0.9, f"{algo} {task} seed {seed}: {fraction}"
    # the gap that is left is beta * KL(pi || pi*) >= 0: no policy passes the optimum
    assert max(value for _, value in scalars["charts/objective"]) <= optimum + 1e-6
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] >= summary["total_steps"]  # the preset's whole budget, no more
    print(f"{algo} {task} seed {seed}: fraction {fraction[-1]:.3f}, "
          f"{summary['wall_time']/60:.1f} min")
    if algo == "ppo":  # the value head's error against Q* falls over training
        error = [value for _, value in scalars["values/q_error_vs_optimal"]]
        assert error[-1] < 0.5 * error[0], f"q error {error}"
    else:
        assert "values/q_error_vs_optimal" not in scalars
