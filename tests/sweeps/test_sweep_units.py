"""The pure parts of sweeps: the thread rule per launcher, summary grouping and statistics, the
curve smoothing and band, missing-plugin messages, and the seed-averaged objective (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from rltrain.app.summary import Run, band, find_runs, group_runs, swept_keys, trailing_mean
from rltrain.config.errors import explain
from rltrain.errors import UserError
from rltrain.runner.device import job_thread_cap, launcher_thread_cap

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
RAY = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.mark.parametrize(
    ("launcher", "cores", "threads"),
    [
        ({"_target_": JOBLIB, "n_jobs": 2}, 2, 1),
        ({"_target_": JOBLIB, "n_jobs": 4}, 16, 4),
        ({"_target_": JOBLIB, "n_jobs": 3}, 16, 5),  # floor(16 / 3)
        ({"_target_": JOBLIB, "n_jobs": 32}, 16, 1),  # never below one
        ({"_target_": JOBLIB, "n_jobs": -1}, 8, 1),  # one job per core
        ({"_target_": JOBLIB, "n_jobs": -2}, 8, 1),  # 7 jobs on 8 cores
        ({"_target_": JOBLIB, "n_jobs": -5}, 8, 2),  # 4 jobs on 8 cores
        ({"_target_": RAY, "ray": {"init": {}, "remote": {"num_cpus": 4}}}, 16, 4),
        ({"_target_": RAY, "ray": {"init": {}, "remote": {}}}, 16, 1),  # Ray's default: 1 CPU
        ({"_target_": SLURM, "cpus_per_task": 8}, 64, 8),
        ({"_target_": SLURM, "cpus_per_task": None}, 64, 64),
        ({"_target_": BASIC}, 6, 6),  # sequential jobs: every core
        (None, 6, 6),
    ],
)
def test_thread_rule_per_launcher(launcher, cores, threads):
    assert launcher_thread_cap(launcher, cores) == threads


def test_job_thread_cap_reads_the_environment_then_the_running_multirun(monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    monkeypatch.setenv("RLTRAIN_JOB_THREADS", "3")
    assert job_thread_cap() == 3
    monkeypatch.setenv("RLTRAIN_JOB_THREADS", "0")
    with pytest.raises(UserError, match="RLTRAIN_JOB_THREADS=0"):
        job_thread_cap()
    monkeypatch.delenv("RLTRAIN_JOB_THREADS")
    monkeypatch.setattr("rltrain.runner.device.usable_cores", lambda: 8)
    hydra_config = HydraConfig.instance()
    saved = hydra_config.cfg
    try:
        hydra_config.cfg = None  # type: ignore[assignment]
        assert job_thread_cap() == 8  # no Hydra (compose, resume): every core
        job = OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN,
                                          "launcher": {"_target_": JOBLIB, "n_jobs": 4}}})
        hydra_config.cfg = job  # type: ignore[assignment]
        assert job_thread_cap() == 2
        job.hydra.mode = RunMode.RUN
        assert job_thread_cap() == 8
    finally:
        hydra_config.cfg = saved  # type: ignore[assignment]


def fake_run(name: str, overrides: list[str], eval_return: float, **extra: object) -> Run:
    summary = {"algo": "ppo", "env": "cartpole", "eval_return_mean": eval_return,
               "seed": next((int(o.split("=")[1]) for o in overrides if o.startswith("seed=")), 0),
               "steps": 100, "wall_time": 2.0, **extra}
    return Run(Path(name), name, tuple(overrides), summary)


def test_grouping_by_configuration_minus_seed_with_mean_and_population_std():
    runs = [
        fake_run("0", ["algo.lr=0.1", "seed=0", "total_steps=100"], 10.0),
        fake_run("1", ["algo.lr=0.1", "seed=1", "total_steps=100"], 20.0, wall_time=4.0),
        fake_run("2", ["algo.lr=0.2", "seed=0", "total_steps=100"], 30.0),
        fake_run("3", ["algo.lr=0.2", "seed=1", "total_steps=100"], 60.0),
        fake_run("4", ["algo.lr=0.2", "seed=2", "total_steps=100"], 0.0),
    ]
    groups = group_runs(runs)
    assert [[run.name for run in group.runs] for group in groups] == [["2", "3", "4"], ["0", "1"]]
    best, second = groups
    assert best.mean == 30.0 and best.std == pytest.approx(np.sqrt((0 + 900 + 900) / 3))
    assert second.mean == 15.0 and second.std == 5.0
    assert second.mean_of("wall_time") == 3.0
    assert best.config == ("algo.lr=0.2", "total_steps=100")
    assert swept_keys(runs) == ["algo.lr"]


def test_swept_keys_count_a_missing_key_as_a_value_and_skip_seed_algo_env():
    runs = [
        fake_run("a", ["algo=ppo", "seed=0", "+search=x"], 1.0),
        fake_run("b", ["algo=dqn", "seed=1", "+search=x", "algo.lr=0.1"], 1.0),
    ]
    assert swept_keys(runs) == ["algo.lr"]


def test_runs_of_different_algorithms_with_equal_overrides_stay_apart():
    runs = [fake_run("a", [], 1.0), fake_run("b", [], 3.0, algo="dqn")]
    assert [group.runs[0].name for group in group_runs(runs)] == ["b", "a"]


def test_trailing_mean_matches_hand_computed_values():
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    expected = [1.0, 1.5, 2.0, 3.0, 17 / 3]  # window 3: mean of the last (up to) 3 points
    assert trailing_mean(values, 3) == pytest.approx(expected)
    assert len(trailing_mean(np.zeros(0), 3)) == 0


def test_band_holds_each_run_value_and_counts_it_only_inside_its_own_steps():
    grid = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
    first = (np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 20.0]))
    second = (np.array([5.0, 15.0]), np.array([100.0, 200.0]))
    mean, low, high = band([first, second], grid)
    # first run: 0, 0, 10, 10, 20, - ; second run: -, 100, 100, 200, -, -
    assert mean[:5] == pytest.approx([0.0, 50.0, 55.0, 105.0, 20.0])
    assert low[:5] == pytest.approx([0.0, 0.0, 10.0, 10.0, 20.0])
    assert high[:5] == pytest.approx([0.0, 100.0, 100.0, 200.0, 20.0])
    assert np.isnan(mean[5]) and np.isnan(low[5]) and np.isnan(high[5])


def test_find_runs_reads_overrides_and_skips_unfinished_runs(tmp_path):
    for job, finished in (("0", True), ("1", False), ("10", True), ("2", True)):
        run = tmp_path / job
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n- algo.lr=0.1\n")
        if finished:
            (run / "summary.json").write_text(json.dumps({"eval_return_mean": 1.0, "seed": 0}))
    runs = find_runs(tmp_path)
    assert [run.name for run in runs] == ["0", "2", "10"]  # natural order
    assert runs[2].overrides == ("seed=10", "algo.lr=0.1")
    with pytest.raises(UserError, match="no finished runs under"):
        find_runs(tmp_path / "1")
    with pytest.raises(UserError, match="does not exist"):
        find_runs(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("missing", "plugin", "extra"),
    [
        ("hydra/launcher/ray", "hydra-ray-launcher", "ray"),
        ("hydra/launcher/joblib", "hydra-joblib-launcher", "sweep"),
        ("hydra/launcher/submitit_slurm", "hydra-submitit-launcher", "sweep"),
        ("hydra/sweeper/optuna", "hydra-optuna-sweeper", "sweep"),
    ],
)
def test_a_missing_plugin_option_names_the_extra_to_install(missing, plugin, extra):
    group, _, option = missing.rpartition("/")
    error = MissingConfigException(
        message=f"Could not find '{missing}'\n\nAvailable options in '{group}':\n\tbasic",
        missing_cfg_file=missing,
        options=["basic"],
    )
    assert explain(error) == (
        f"{group}={option} needs the {plugin} plugin, which is not installed: "
        f"pip install 'rltrain[{extra}]'"
    )


def test_an_unknown_launcher_still_lists_the_options():
    error = MissingConfigException(
        message="Could not find 'hydra/launcher/nope'", missing_cfg_file="hydra/launcher/nope",
        options=["basic", "joblib"],
    )
    assert explain(error) == "unknown hydra/launcher 'nope'; choose one of: basic, joblib"


def test_num_seeds_trains_each_seed_in_its_own_run_dir_and_returns_the_mean(tmp_path):

    from rltrain.app.sweeps import train_seeds
    from rltrain.config.store import compose_run_config
    overrides = ["seed=3", "num_seeds=2", "total_steps=256", "env.num_envs=2", "algo.n_steps=32",
                 "algo.batch_size=64", "algo.n_epochs=1", "eval_episodes=2", "logger=none",
                 "device=cpu"]
    node = compose_run_config(overrides)
    run_dir = tmp_path / "job"
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    objective = train_seeds(node, run_dir)
    summaries = [json.loads((run_dir / f"seed_{s}" / "summary.json").read_text()) for s in (3, 4)]
    assert [s["seed"] for s in summaries] == [3, 4]
    assert objective == pytest.approx(np.mean([s["eval_return_mean"] for s in summaries]))
    for seed in (3, 4):
        saved = OmegaConf.load(run_dir / f"seed_{seed}" / ".hydra" / "config.yaml")
        assert saved.seed == seed and saved.num_seeds == 1 and saved.total_steps == 256
        seed_overrides = list(OmegaConf.load(run_dir / f"seed_{seed}/.hydra/overrides.yaml"))
        assert seed_overrides == [*overrides[2:], f"seed={seed}"]
    (group,) = group_runs(find_runs(run_dir))  # the two seeds are one configuration
    assert [run.name for run in group.runs] == ["seed_3", "seed_4"]
    assert group.mean == pytest.approx(objective)
