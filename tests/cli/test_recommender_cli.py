"""env=recommender through the console script: bad settings get one line each, and `rltrain eval`
prints the agent's clicks per session beside the env's own baselines."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BAD = {
    "negative_probability": (["env.fatigue=-0.2"], r"env\.fatigue=-0\.2 is a probability"),
    "probability_above_one": (["env.drift=1.5"], r"env\.drift=1\.5 is a probability"),
    "empty_catalogue": (["env.n_items=0"], r"env\.n_items=0: the catalogue is empty"),
    "fewer_items_than_categories": (
        ["env.n_categories=4", "env.n_items=2"], r"fewer than env\.n_categories=4"
    ),
    "table_too_large": (["env.n_categories=12"], r"more than a table holds"),
    "slate_larger_than_catalogue": (["env.slate_size=5"], r"env\.slate_size=5 must be between"),
    "unknown_view": (["env.view=graph"], r"env\.view=graph is not known"),
    "interest_bounds_reversed": (
        ["env.interest_min=0.8", "env.interest_max=0.2"], r"interest_min=0\.8 must be <="
    ),
    "bandit_algo_on_the_tabular_view": (
        ["algo=ucb"], r"algo=ucb needs context vectors and discrete arms"
    ),
    "bandit_needs_no_network": (
        ["algo=thompson", "env.view=bandit", "network=mlp"], r"network=mlp cannot be used"
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_recommender_settings_are_one_line(
    name: str, run_cli: Any, one_error_line: Callable[[subprocess.CompletedProcess[str]], str],
    tmp_path: Path,
) -> None:
    overrides, pattern = BAD[name]
    algo = [] if any(o.startswith("algo=") for o in overrides) else ["algo=q_learning"]
    result = run_cli(
        [*algo, "env=recommender", *overrides, "total_steps=64", "hydra.run.dir=run"], tmp_path
    )
    message = one_error_line(result)
    assert re.search(pattern, message), message


def test_eval_prints_clicks_beside_the_baselines(
    run_cli: Any, tmp_path: Path, tb_scalars: Any
) -> None:
    result = run_cli(
        ["algo=value_iteration", "env=recommender", "algo.gamma=0.9", "hydra.run.dir=run"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    evaluated = run_cli(["eval", "run", "--episodes", "300"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    line = next(x for x in evaluated.stdout.splitlines() if x.startswith("baselines"))
    numbers = dict(re.findall(r"(agent|random|greedy|optimal) ([0-9.]+)", line))
    assert set(numbers) == {"agent", "random", "greedy", "optimal"}, line
    # the exact figures of the default tabular view (tests/unit/test_recommender.py)
    assert float(numbers["optimal"]) == pytest.approx(7.70, abs=0.01)
    assert float(numbers["greedy"]) == pytest.approx(6.21, abs=0.01)
    # 300 sessions of the planner's policy: within sampling error of its exact value, above
    # greedy (value iteration with gamma 0.9 is not the undiscounted optimum, but close)
    assert float(numbers["agent"]) > float(numbers["greedy"])
    # the same policy scored exactly (policy evaluation on the model): a stationary policy cannot
    # beat the finite-horizon optimum, and 300 sampled sessions (std about 9) lie within 4
    # standard errors of it
    exact = float(re.findall(r"\(exact ([0-9.]+)\)", line)[0])
    assert float(numbers["greedy"]) < exact <= float(numbers["optimal"]) + 1e-9
    assert abs(float(numbers["agent"]) - exact) < 4 * 9 / 300**0.5
    # and the training run logged it beside the sampled evaluation
    logged = tb_scalars(tmp_path / "run")["eval/return_exact"]
    assert logged[-1][1] == pytest.approx(exact, abs=0.01)
