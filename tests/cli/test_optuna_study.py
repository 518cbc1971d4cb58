"""Sweeps that survive, through the installed console script: an Optuna study whose search space
holds infeasible points runs all its trials (each infeasible one told to Optuna as failed, with its
one-line reason), the sampler is seeded from `seed`, a swept value that can never be valid stops the
sweep before any job, and every point of the shipped presets' spaces is feasible.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
    reason="hydra-optuna-sweeper is not installed (pip install 'rltrain[sweep]')",
)

# One env, so that rollouts are n_steps transitions: (32, 64), (32, 128) and (64, 128) are
# infeasible (n_steps, batch_size) pairs, every value is feasible with some other.
INFEASIBLE_SPACE = [
    "-m", "+search=ppo_cartpole", "env.num_envs=1",
    "algo.n_steps=choice(32,64,128)", "algo.batch_size=choice(32,64,128)",
    "total_steps=256", "eval_episodes=1", "algo.n_epochs=1", "logger=none", "device=cpu",
]  # fmt: skip


def load_trials(workdir: Path) -> list:
    import optuna

    storage = f"sqlite:///{workdir / 'multirun' / 'search' / 'ppo_cartpole' / 'optuna.db'}"
    return optuna.load_study(study_name="ppo_cartpole", storage=storage).trials  # type: ignore[no-any-return]


def test_a_study_with_infeasible_points_finishes_every_trial(run_cli, workdir, tmp_path):
    import optuna

    result = run_cli([*INFEASIBLE_SPACE, "hydra.sweeper.n_trials=4", "seed=0"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_trials(workdir)
    assert len(trials) == 4
    states = {trial.number: trial.state for trial in trials}
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed, "seed 0 must draw an infeasible point for this test to mean anything"
    assert len(failed) < 4, states
    for trial in trials:
        n_steps, batch = trial.params["algo.n_steps"], trial.params["algo.batch_size"]
        # failed exactly where the minibatch does not fit the rollout
        assert (trial.state == optuna.trial.TrialState.FAIL) == (batch > n_steps), trial.params
    reasons = re.findall(r"Failed experiment: (.*)$", result.stdout, flags=re.M)
    assert len(reasons) == len(failed)
    for reason in reasons:
        assert re.fullmatch(
            r"algo\.batch_size=\d+ is larger than a rollout \(algo\.n_steps x env\.num_envs = "
            r"\d+\); use algo\.batch_size<=\d+",
            reason,
        ), reason
    assert "Traceback" not in result.stdout + result.stderr
    assert "Best value:" in result.stdout

    # seeded from `seed`: the same command elsewhere draws the same points
    again = tmp_path / "again"
    again.mkdir()
    result = run_cli([*INFEASIBLE_SPACE, "hydra.sweeper.n_trials=2", "seed=0"], again)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [t.params for t in load_trials(again)] == [t.params for t in trials[:2]]

    # rerunning the command continues the stored study with new points, not the same draws
    result = run_cli([*INFEASIBLE_SPACE, "hydra.sweeper.n_trials=2", "seed=0"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    continued = load_trials(workdir)
    assert len(continued) == 6
    assert [t.params for t in continued[4:]] != [t.params for t in trials[:2]]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["+search=ppo_cartpole", "env.num_envs=1", "algo.batch_size=choice(32,4096)"],
         r"sweep algo\.batch_size: the value 4096 fails in every point of the search space that "
         r"has it \(algo\.batch_size=4096 is larger than a rollout .*\)"),
        (["+search=ppo_cartpole", "algo.gamma=interval(0.9,1.5)"],
         r"sweep algo\.gamma: the value 1\.5 fails in every point .* \(algo\.gamma=1\.5 must be "
         r"in \(0, 1\]\)"),
        (["+search=dqn_cartpole", "algo.batch_size=choice(64,1000000)", "algo.buffer_size=1000"],
         r"sweep algo\.batch_size: the value 1000000 fails .*"
         r"\(algo\.buffer_size=1000 is smaller .*\)"),
        # a grid sweep: every job is composed and typed first, and the bad one is named
        (["algo.lr=1e-3,-1"],
         r"sweep job 1 \(algo\.lr=-1\): algo\.lr=-1\.0 must be positive; no job of the 2 was "
         r"started"),
        (["+search=ppo_cartpole", "env.num_envs=1", "algo.n_steps=16",
          "algo.batch_size=choice(32,64)"],
         r"no point of the sweep's search space is a valid config \(the first one checked: "
         r"algo\.batch_size=32 is larger than a rollout .*\)"),
    ],
)  # fmt: skip
def test_a_range_error_in_the_search_space_stops_the_sweep_before_any_job(
    run_cli, workdir, one_error_line, overrides, expected
):
    message = one_error_line(run_cli(["-m", *overrides, "device=cpu"], workdir))
    assert re.fullmatch(expected, message), message
    assert not (workdir / "multirun").exists()  # no job, no study


@pytest.mark.parametrize("preset", ["ppo_cartpole", "dqn_cartpole"])
def test_every_point_of_a_shipped_search_preset_is_feasible(preset):
    """The README's command (`rltrain -m +search=ppo_cartpole`) died at an infeasible point; the
    shipped spaces now hold none. The schemas' constraints tie two keys at most (batch_size and
    n_steps), so every pair of values of every two swept keys is checked (the full product is
    thousands of points)."""
    from omegaconf import OmegaConf

    from rltrain.app.search_space import swept_values
    from rltrain.config.store import compose_run_config
    from rltrain.config.validate import typed_config

    node = compose_run_config([f"+search={preset}"], with_hydra=True)
    params = [f"{key}={value}" for key, value in node.hydra.sweeper.params.items()]
    assert node.hydra.sweeper.max_failure_rate == 1.0
    assert node.hydra.sweeper.sampler.seed == node.seed  # seeded from `seed`
    space = swept_values(params, inclusive_range=True)
    assert {"algo.lr", "algo.batch_size"} <= set(space)
    task = compose_run_config([f"+search={preset}"])
    for first, second in itertools.combinations(space, 2):
        for pair in itertools.product(space[first], space[second]):
            candidate = task.copy()
            for key, value in zip((first, second), pair, strict=True):
                OmegaConf.update(candidate, key, value, merge=False)
            typed_config(candidate)  # raises a UserError at an infeasible point


def test_a_swept_config_group_is_left_to_hydra():
    """`algo=ppo,a2c` sweeps whole config groups: not values the range check can set."""
    from rltrain.app.search_space import check_search_space, swept_values
    from rltrain.config.store import compose_run_config

    task = compose_run_config(["env=cartpole"])
    space = swept_values(["algo=ppo,a2c", "algo.lr=1e-3,3e-4"], inclusive_range=False)
    assert set(space) == {"algo", "algo.lr"}
    check_search_space(task, ["env=cartpole"], space)  # no error: both lrs valid, algo skipped
