"""The budget is the budget: a run trains at least `total_steps` and less than `total_steps` plus
one iteration of its configured size, for every family (budgets chosen to not be multiples of an
iteration). An iteration larger than the whole budget is refused (the bad-input matrix)."""

from __future__ import annotations

import pytest

# (overrides, env steps in one iteration)
CASES: dict[str, tuple[list[str], int]] = {
    "ppo": (["env.num_envs=4", "algo.n_steps=16", "algo.batch_size=64", "total_steps=1000"], 64),
    "a2c": (["algo=a2c", "env.num_envs=5", "algo.n_steps=5", "total_steps=101"], 25),
    "dqn": (["algo=dqn", "env.num_envs=7", "algo.learning_starts=50", "total_steps=300"], 7),
    "q_learning": (["algo=q_learning", "env=gridworld", "env.num_envs=3", "total_steps=100"], 3),
    "reinforce": (
        ["algo=reinforce", "env.num_envs=4", "algo.episodes_per_update=4", "total_steps=300"],
        4 * 500,  # one iteration is 4 whole episodes, at most 500 steps each
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_trains_its_budget_and_at_most_one_iteration_more(
    case, run_cli, workdir, find_run_dirs, summary_of
):
    args, iteration = CASES[case]
    total = int(next(a for a in args if a.startswith("total_steps=")).split("=")[1])
    result = run_cli([*args, "eval_episodes=1", "logger.progress=none", "device=cpu"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = find_run_dirs(workdir)
    steps = summary_of(run)["steps"]
    assert total <= steps < total + iteration, (steps, total, iteration)
