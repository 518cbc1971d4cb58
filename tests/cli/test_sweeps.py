"""Sweeps through the installed console script: a parallel joblib multirun and `rltrain summary`
(grouped by configuration, CSV, PNG), an Optuna search that a rerun continues, a sweep on a Ray head
on 127.0.0.1, a sweep through SLURM (one node on 127.0.0.1), and the errors around them.

Ray, SLURM and the Optuna search take tens of seconds each and are marked slow; each is skipped
when its plugin (pip install 'rltrain[sweep]' / 'rltrain[ray]') or its daemons are missing.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

# About a second of PPO/CartPole per job (64-step rollouts, one epoch, a 2-episode evaluation).
SMALL = [
    "total_steps=512",
    "env.num_envs=2",
    "algo.n_steps=32",
    "algo.batch_size=64",
    "algo.n_epochs=1",
    "eval_episodes=2",
    "logger.log_interval=128",
    "device=cpu",
]
SMALL_KEYS = {arg.split("=")[0] for arg in SMALL if not arg.startswith("logger.")}


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def sweep_env(**extra: str) -> dict[str, str]:
    """The CLI test environment (one torch thread per job, plain output) plus `extra`."""
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "RLTRAIN_JOB_THREADS": "1",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "200",
    })
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------
# joblib: a 2 x 2 multirun, two jobs at a time, then the summary


@pytest.fixture(scope="session")
def joblib_sweep(run_cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(sweep dir, launcher stdout) of one 2 x 2 joblib multirun, run once per test session and
    shared by the pytest-xdist workers (the first one runs it, the others wait on a file lock)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the base temp dir shared by this session's workers
    cwd = root / "joblib_sweep"
    with FileLock(str(root / "joblib_sweep.lock")):
        if not (cwd / "stdout.txt").is_file():
            cwd.mkdir(exist_ok=True)
            args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                    "algo.lr=1e-3,3e-4", "seed=0,1", *SMALL]
            result = run_cli(args, cwd, timeout=420)
            assert result.returncode == 0, result.stdout + result.stderr
            (cwd / "stdout.txt").write_text(result.stdout)
    (sweep,) = (cwd / "multirun").iterdir()
    return sweep, (cwd / "stdout.txt").read_text()


def test_joblib_2x2_sweep_runs_four_jobs_two_at_a_time(joblib_sweep, find_run_dirs, summary_of):
    sweep, stdout = joblib_sweep
    assert "Joblib.Parallel(n_jobs=2" in stdout and "launching 4 jobs" in stdout
    runs = find_run_dirs(sweep)
    # each run is named after the keys swept, not the ones every job shares
    assert [run.name for run in runs] == [
        "algo.lr=0.0003,seed=0", "algo.lr=0.0003,seed=1", "algo.lr=0.001,seed=0",
        "algo.lr=0.001,seed=1",
    ]  # fmt: skip
    configs = {(s["overrides"][0], s["seed"]) for s in map(summary_of, runs)}
    assert configs == {("algo.lr=0.001", 0), ("algo.lr=0.001", 1),
                       ("algo.lr=0.0003", 0), ("algo.lr=0.0003", 1)}
    # Each job writes .hydra/config.yaml when it starts and summary.json when it ends: with two
    # workers, some job starts before another one has ended.
    spans = [
        ((run / ".hydra" / "config.yaml").stat().st_mtime, (run / "summary.json").stat().st_mtime)
        for run in runs
    ]
    assert all(start <= end for start, end in spans)
    overlapping = [
        (i, j) for i in range(4) for j in range(i + 1, 4)
        if spans[i][0] < spans[j][1] and spans[j][0] < spans[i][1]
    ]
    assert overlapping, spans


def test_each_job_appears_in_the_hparams_tab_with_its_swept_keys_and_eval_return(
    joblib_sweep, find_run_dirs, summary_of, tb_events, tb_scalars
):
    from tensorboard.plugins.hparams import plugin_data_pb2

    sweep, _ = joblib_sweep
    for run in find_run_dirs(sweep):
        summary = summary_of(run)
        content = tb_events(run).PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        lr = float(summary["overrides"][0].split("=")[1])
        assert start.hparams["algo.lr"].number_value == pytest.approx(lr)
        assert start.hparams["seed"].number_value == summary["seed"]
        experiment = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/experiment"]
        ).experiment
        assert [info.name.tag for info in experiment.metric_infos] == [
            "eval/return_mean", "eval/best_return"
        ]  # fmt: skip
        # only what the sweep and the command line set, with their types
        assert set(start.hparams) == {"algo.lr", "seed", *SMALL_KEYS, "preset"}
        assert start.hparams["device"].string_value == "cpu"
        # HParams shows each metric's last point: the final evaluation and the best one
        assert tb_scalars(run)["eval/return_mean"][-1][1] == pytest.approx(
            summary["eval_return_mean"]
        )
        assert tb_scalars(run)["eval/best_return"][-1][1] == pytest.approx(
            summary["best_eval_return"]
        )


def test_summary_groups_the_seeds_of_each_configuration(
    joblib_sweep, run_cli, summary_of, tmp_path
):
    sweep, _ = joblib_sweep
    table = tmp_path / "groups.csv"
    result = run_cli(["summary", str(sweep), "--csv", str(table)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    text = " ".join(result.stdout.split())  # rich wraps long titles
    assert f"4 runs in {sweep}, 2 configurations" in text
    body = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(body) == 2, result.stdout
    rows = read_csv(table)
    assert sorted(row["algo.lr"] for row in rows) == ["0.0003", "0.001"]
    by_lr = {row["algo.lr"]: row for row in rows}
    for lr in ("0.001", "0.0003"):
        row, jobs = by_lr[lr], (f"algo.lr={lr},seed=0", f"algo.lr={lr},seed=1")
        returns = np.array([summary_of(sweep / job)["eval_return_mean"] for job in jobs])
        assert row["runs"] == " ".join(jobs) and row["seeds"] == "0,1" and row["n_runs"] == "2"
        assert float(row["eval_return_mean"]) == pytest.approx(returns.mean())
        assert float(row["eval_return_std"]) == pytest.approx(returns.std())
        assert float(row["eval_return_min"]) == returns.min()
        assert float(row["eval_return_max"]) == returns.max()
        assert float(row["steps"]) == 512
        assert "seed=" not in row["overrides"] and f"algo.lr={lr}" in row["overrides"]
    means = [float(row["eval_return_mean"]) for row in rows]
    assert means == sorted(means, reverse=True)  # best first
    # the keys that do not vary are listed once, not as columns
    assert "in every run:" in text and "total_steps=512" in text


def test_summary_without_grouping_has_one_row_per_run(joblib_sweep, run_cli, summary_of, tmp_path):
    sweep, _ = joblib_sweep
    table = tmp_path / "runs.csv"
    result = run_cli(["summary", str(sweep), "--no-group", "--csv", str(table)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_csv(table)
    # in the order the jobs ran
    assert [row["algo.lr"] for row in rows] == ["0.001", "0.001", "0.0003", "0.0003"]
    assert [row["seed"] for row in rows] == ["0", "1", "0", "1"]
    for row in rows:
        assert row["run"] == f"algo.lr={row['algo.lr']},seed={row['seed']}"
        assert float(row["eval_return"]) == summary_of(sweep / row["run"])["eval_return_mean"]
        assert f"│ {row['run']} " in result.stdout


def test_summary_plot_draws_one_curve_per_configuration(joblib_sweep, run_cli, tmp_path):
    from PIL import Image

    sweep, _ = joblib_sweep
    png = tmp_path / "plots" / "curves.png"
    result = run_cli(["summary", str(sweep), "--plot", str(png)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {png} (2 configurations" in result.stdout
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (800, 500)
        pixels = np.asarray(image.convert("RGB"))
    # matplotlib draws curve k in colour Ck: the two configurations are C0 and C1, and no C2.
    # Over 512 steps the two learning rates give nearly the same curve (same seeds, same first
    # rollouts), so C1's line may cover most of C0's; C0's legend swatch alone is about 44
    # pixels of its exact colour.
    colours = {"C0": (0x1F, 0x77, 0xB4), "C1": (0xFF, 0x7F, 0x0E), "C2": (0x2C, 0xA0, 0x2C)}
    counts = {name: int(np.all(pixels == rgb, axis=-1).sum()) for name, rgb in colours.items()}
    assert counts["C0"] > 30 and counts["C1"] > 30 and counts["C2"] == 0, counts


def test_summary_plot_of_runs_without_event_files_says_so(
    joblib_sweep, run_cli, one_error_line, tmp_path
):
    sweep, _ = joblib_sweep
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("events.out.tfevents.*"))
    message = one_error_line(run_cli(["summary", str(copy), "--plot", "x.png"], tmp_path))
    assert "charts/episodic_return" in message and "logger=none" in message
    assert not (tmp_path / "x.png").exists()


def test_summary_of_a_directory_without_finished_runs(run_cli, workdir, one_error_line):
    unfinished = workdir / "multirun" / "0" / ".hydra"
    unfinished.mkdir(parents=True)
    (unfinished / "overrides.yaml").write_text("- seed=0\n")
    message = one_error_line(run_cli(["summary", "multirun"], workdir))
    assert "no finished runs under multirun" in message and "summary.json" in message


# ---------------------------------------------------------------------------------------------
# launcher / sweeper presets and errors (composition only: no training)

needs_optuna = pytest.mark.skipif(
    not has_module("hydra_plugins.hydra_optuna_sweeper"),
    reason="hydra-optuna-sweeper is not installed (pip install 'rltrain[sweep]')",
)


@pytest.mark.parametrize(
    ("override", "module", "extra"),
    [
        ("hydra/launcher=joblib", "hydra_plugins.hydra_joblib_launcher", "sweep"),
        ("hydra/launcher=submitit_slurm", "hydra_plugins.hydra_submitit_launcher", "sweep"),
        ("hydra/launcher=slurm_gpu", "hydra_plugins.hydra_submitit_launcher", "sweep"),
        ("hydra/launcher=ray", "hydra_plugins.hydra_ray_launcher", "ray"),
        ("hydra/launcher=ray_cluster", "hydra_plugins.hydra_ray_launcher", "ray"),
        ("hydra/sweeper=optuna", "hydra_plugins.hydra_optuna_sweeper", "sweep"),
        ("+search=ppo_cartpole", "hydra_plugins.hydra_optuna_sweeper", "sweep"),
    ],
)
def test_a_launcher_or_sweeper_that_is_not_installed_names_its_extra(
    override, module, extra, run_cli, workdir, one_error_line
):
    if has_module(module):
        pytest.skip(f"{module} is installed here")
    message = one_error_line(run_cli(["-m", override, "seed=0,1"], workdir))
    assert f"pip install 'rltrain[{extra}]'" in message and "not installed" in message


@needs_optuna
def test_an_optuna_search_without_a_search_space_says_how_to_give_one(
    run_cli, workdir, one_error_line
):
    # the preset with its parameters removed, and no ranges on the command line
    message = one_error_line(run_cli(
        ["-m", "+search=ppo_cartpole", "hydra.sweeper.params=null", *SMALL], workdir
    ))
    assert "no search space" in message and "+search=ppo_cartpole" in message
    assert "interval(" in message
    assert not (workdir / "multirun" / "search" / "ppo_cartpole" / "optuna.db").exists()


def sweep_checks() -> list[str]:
    """The override that enables rltrain.app.sweeps.SweepChecks, unless config.yaml does."""
    if "rltrain.app.sweeps.SweepChecks" in (REPO / "rltrain" / "conf" / "config.yaml").read_text():
        return []
    return ["+hydra.callbacks.rltrain_sweeps._target_=rltrain.app.sweeps.SweepChecks"]


@needs_optuna
def test_a_bare_optuna_sweeper_without_a_search_space_says_how_to_give_one(
    run_cli, workdir, one_error_line
):
    message = one_error_line(run_cli(["-m", "hydra/sweeper=optuna", *sweep_checks(), *SMALL],
                                     workdir))
    assert "no search space" in message and "+search=" in message
    assert not (workdir / "multirun").exists()  # stopped before any trial


@needs_optuna
def test_a_bare_optuna_search_maximises_the_return_unless_told_otherwise(run_cli, workdir):
    args = ["-m", "hydra/sweeper=optuna", *sweep_checks(), "hydra.sweeper.n_trials=1",
            "algo.lr=tag(log,interval(1e-4,1e-2))", *SMALL, "total_steps=64", "logger=none"]
    result = run_cli(args, workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Directions: ['maximize']" in result.stdout
    result = run_cli([*args, "hydra.sweeper.direction=minimize"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Directions: ['minimize']" in result.stdout


@pytest.mark.skipif(
    not has_module("hydra_plugins.hydra_submitit_launcher"), reason="submitit launcher missing"
)
def test_the_slurm_gpu_preset_takes_its_resources_from_config(run_cli, workdir):
    result = run_cli(["--cfg", "hydra", "hydra/launcher=slurm_gpu",
                      "hydra.launcher.gpus_per_node=2", "hydra.launcher.partition=a100"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    launcher = result.stdout.split("\n  launcher:\n", 1)[1].split("\n  sweeper:", 1)[0]
    assert "hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in launcher
    for line in ("partition: a100", "gpus_per_node: 2", "cpus_per_task: 8", "timeout_min: 240",
                 "tasks_per_node: 1", "mem_gb: 32"):
        assert f"    {line}\n" in launcher + "\n", line


# ---------------------------------------------------------------------------------------------
# Optuna: 6 trials into a sqlite study, then 6 more by rerunning the same command

OPTUNA_BUDGET = [
    "total_steps=1024",
    "env.num_envs=2",
    "algo.n_steps=64",
    "algo.batch_size=64",
    "algo.n_epochs=4",
    "eval_episodes=2",
    "logger=none",
    "device=cpu",
]


@pytest.mark.slow
@needs_optuna
def test_optuna_search_of_six_trials_then_a_rerun_continues_the_study(
    run_cli, workdir, find_run_dirs, summary_of
):
    import optuna

    args = ["-m", "+search=ppo_cartpole", "hydra.sweeper.n_trials=6", *OPTUNA_BUDGET]
    first = run_cli(args, workdir, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    study_dir = workdir / "multirun" / "search" / "ppo_cartpole"
    storage = f"sqlite:///{study_dir / 'optuna.db'}"
    study = optuna.load_study(study_name="ppo_cartpole", storage=storage)
    trials = study.trials
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    # the objective of each trial is the final eval return its run reported
    runs = find_run_dirs(study_dir)
    assert len(runs) == 6
    reported = sorted(summary_of(run)["eval_return_mean"] for run in runs)
    assert sorted(t.value for t in trials) == pytest.approx(reported)
    assert study.best_value >= trials[0].value
    assert study.best_value == max(reported)
    # the sampler searched: the learning rates differ between trials, all within the range
    rates = [t.params["algo.lr"] for t in trials]
    assert len(set(rates)) == 6 and all(1e-4 <= rate <= 3e-3 for rate in rates)
    # fixed command-line values are not searched
    assert "algo.n_steps" not in trials[0].params

    second = run_cli(args, workdir, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    study = optuna.load_study(study_name="ppo_cartpole", storage=storage)
    assert len(study.trials) == 12
    assert [t.number for t in study.trials] == list(range(12))
    assert [t.params for t in study.trials[:6]] == [t.params for t in trials]
    # new points, not the first launch's random start-up draws again
    assert len({t.params["algo.lr"] for t in study.trials}) == 12
    runs = find_run_dirs(study_dir)
    assert len(runs) == 12  # the rerun's jobs did not overwrite the first six
    assert study.best_value == max(summary_of(run)["eval_return_mean"] for run in runs)
    assert study.best_value >= study.trials[0].value

    table = workdir / "study.csv"
    result = run_cli(["summary", str(study_dir), "--csv", str(table)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_csv(table)
    assert len(rows) == 12 and float(rows[0]["eval_return_mean"]) == study.best_value
    assert {"algo.lr", "algo.gamma", "algo.gae_lambda"} <= set(rows[0])


# ---------------------------------------------------------------------------------------------
# Ray: a head on 127.0.0.1 started by the test, a 2-job sweep joining it by address


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_env() -> dict[str, str]:
    """Keeps Ray on loopback and turns its token authentication on with a token of this test
    (Ray 2.60 turns it on by itself once ~/.ray/auth_token exists, and a client must then say
    RAY_AUTH_MODE=token): the head and the `rltrain` client share it; ~/.ray is not read."""
    return sweep_env(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=RAY_TOKEN,
    )


RAY_TOKEN = secrets.token_hex(32)


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A Ray head on 127.0.0.1 in a process group of its own; stopped (that group only) after."""
    if not (has_module("ray") and has_module("hydra_plugins.hydra_ray_launcher")):
        pytest.skip("ray / hydra-ray-launcher are not installed (pip install 'rltrain[ray]')")
    ray_bin = Path(sys.executable).parent / "ray"
    port = free_port()
    # a short temp dir: Ray's unix socket paths must stay under 107 characters
    temp_dir = tempfile.mkdtemp(prefix="rlray", dir="/tmp")
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 - closed below
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}",
         "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        env=ray_env(),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (Path(temp_dir) / "head.log").read_text():
            assert head.poll() is None, (Path(temp_dir) / "head.log").read_text()
            assert time.monotonic() < deadline, "the Ray head did not start in 120 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_group(head)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group the process leads (it was started with a session of its own), SIGKILL
    to whatever of that group is left after 30 s. Nothing outside the group is touched."""
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        if process.returncode is not None and not _group_alive(group):
            break
        time.sleep(0.5)
    else:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def _group_alive(group: int) -> bool:
    """Whether a live (non-zombie) process of the group remains."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


@pytest.mark.slow
def test_ray_sweep_on_a_head_joined_by_address(
    ray_head, run_cli, workdir, find_run_dirs, summary_of
):
    sweep_dir = workdir / "ray_sweep"  # absolute: Ray workers run in the head's directory
    result = run_cli(
        ["-m", "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={ray_head}",
         f"hydra.sweep.dir={sweep_dir}", "seed=0,1", *SMALL, "logger=none"],
        workdir,
        timeout=400,
        env=ray_env(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Connecting to existing Ray cluster at address: {ray_head}" in output
    assert "'object_store_memory': None" in output  # the preset's fix for joining a cluster
    runs = find_run_dirs(sweep_dir)
    assert [run.name for run in runs] == ["seed=0", "seed=1"]
    assert [summary_of(run)["seed"] for run in runs] == [0, 1]
    # the jobs ran in Ray worker processes, not in the launcher
    assert output.count("(_run_job pid=") >= 2, output


# ---------------------------------------------------------------------------------------------
# SLURM: a one-node cluster on 127.0.0.1 (scripts/slurm_local.sh), a 2-job array via submitit


def slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0 and any(
        state.strip().rstrip("*") in ("idle", "mix", "alloc") for state in probe.stdout.splitlines()
    )


@pytest.fixture
def slurm_cluster() -> Iterator[None]:
    if not has_module("hydra_plugins.hydra_submitit_launcher"):
        pytest.skip("hydra-submitit-launcher is not installed (pip install 'rltrain[sweep]')")
    if slurm_up():
        yield  # a cluster someone else runs: use it, leave it running
        return
    if shutil.which("slurmctld") is None or os.geteuid() != 0:
        pytest.skip("no SLURM here (scripts/slurm_local.sh sets one up, as root)")
    script = REPO / "scripts" / "slurm_local.sh"
    state = tempfile.mkdtemp(prefix="rlslurm", dir="/tmp")
    env = dict(os.environ, SLURM_LOCAL_DIR=state)
    try:
        started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True,
                                 text=True, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        yield
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
def test_slurm_sweep_through_submitit(slurm_cluster, run_cli, workdir, find_run_dirs, summary_of):
    sweep_dir = workdir / "slurm_sweep"
    result = run_cli(
        ["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep_dir}", "seed=0,1", *SMALL,
         "logger=none"],
        workdir,
        timeout=500,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Submitit 'slurm' sweep output dir" in result.stdout
    runs = find_run_dirs(sweep_dir)
    assert [run.name for run in runs] == ["seed=0", "seed=1"]
    assert [summary_of(run)["seed"] for run in runs] == [0, 1]
    # the jobs ran under SLURM: submitit keeps each array task's log under .submitit/<job id>
    logs = sorted((sweep_dir / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, logs
    assert all("done: 512 steps" in log.read_text() for log in logs)


def test_runs_that_would_share_a_name_are_numbered(run_cli, workdir, find_run_dirs):
    """A grid that lists a seed twice gets two runs, not one overwritten; a multirun that sweeps
    nothing names its one job by its number (an empty name would be the sweep dir itself)."""
    args = ["total_steps=128", "env.num_envs=2", "algo.n_steps=32", "algo.batch_size=64",
            "eval_episodes=1", "logger=none", "device=cpu"]  # fmt: skip
    for sweep, names in ((["seed=0,0"], ["0_seed=0", "1_seed=0"]), ([], ["0"])):
        root = workdir / ("twice" if sweep else "none")
        result = run_cli(["-m", f"hydra.sweep.dir={root}", *sweep, *args], workdir)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [run.name for run in find_run_dirs(root)] == names
