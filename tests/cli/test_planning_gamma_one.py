"""Planning under gamma = 1 through the console script: a well-posed problem (every loop costs)
is solved by both planners with a policy that reaches the goal; ill-posed ones are refused
(the bad-input matrix holds those rows)."""

from __future__ import annotations

import pytest

# 4x4: the shortest path to G is 6 moves, 5 of them paying the step reward before the goal's +1
OPTIMUM = 1.0 - 5 * 0.01


@pytest.mark.parametrize("algo", ["value_iteration", "policy_iteration"])
def test_gamma_1_with_a_step_cost_is_solved_and_reaches_the_goal(
    algo, run_cli, workdir, find_run_dirs, summary_of
):
    result = run_cli(
        [f"algo={algo}", "env=gridworld", "algo.gamma=1", "env.step_reward=-0.01",
         "eval_episodes=3", "logger.progress=none"],
        workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = find_run_dirs(workdir)
    summary = summary_of(run)
    assert summary["eval_return_mean"] == pytest.approx(OPTIMUM)
    assert summary["steps"] < 100  # converged, not stopped by the sweep cap


def test_policy_iteration_gamma_1_without_a_step_cost_keeps_a_policy_that_ends(
    run_cli, workdir, find_run_dirs, summary_of
):
    # every policy scores 1 here; policy iteration starts from one that reaches the goal and
    # only switches for a strictly better action, so it never considers one that does not
    result = run_cli(
        ["algo=policy_iteration", "env=gridworld", "algo.gamma=1", "eval_episodes=3",
         "logger.progress=none"],
        workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = find_run_dirs(workdir)
    assert summary_of(run)["eval_return_mean"] == 1.0
