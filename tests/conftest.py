"""Shared fixtures: the installed console script, a subprocess runner, temp working dirs, a tiny
training budget, and readers for run directories (TensorBoard scalars, summary.json).

CLI and smoke tests drive `rltrain` exactly as a user does: the console script installed next to
this interpreter, in a subprocess, from a fresh working directory (run dirs land in ./runs there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# A whole PPO/CartPole run in well under a second of training: 8 rollouts of 2 envs x 32 steps,
# 2 epochs of one 64-sample minibatch each, log every 2 rollouts, a 2-episode final evaluation.
TINY: tuple[str, ...] = (
    "total_steps=512",
    "env.num_envs=2",
    "algo.n_steps=32",
    "algo.batch_size=64",
    "algo.n_epochs=2",
    "eval_episodes=2",
    "logger.log_interval=128",
    "device=cpu",
)

# The shared `trained_run`: TINY with a budget that is not a multiple of the 64-step rollout
# (2 envs x 32 steps), so the run must round it up to 512.
TRAINED_RUN_ARGS: list[str] = ["seed=0", "total_steps=500", *TINY[1:]]

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def rltrain_bin() -> Path:
    """The `rltrain` console script of the interpreter running the tests (`pip install -e .`)."""
    path = Path(sys.executable).parent / "rltrain"
    if not path.is_file():
        pytest.fail(f"console script {path} is missing: install the package (`make install`)")
    return path


def cli_env() -> dict[str, str]:
    """Environment for CLI subprocesses: no GPU surprises, no thread oversubscription (pytest -n 2
    already runs two at once), plain progress lines (stdout is a pipe), no colours."""
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "RLTRAIN_JOB_THREADS": "1",
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "200",
        }
    )
    env.pop("HYDRA_FULL_ERROR", None)
    return env


@pytest.fixture(scope="session")
def cli_environment() -> Callable[..., dict[str, str]]:
    """`cli_environment(NAME=value, ...)`: `cli_env()` with these variables added (PYTHONPATH)."""

    def build(**extra: str) -> dict[str, str]:
        return {**cli_env(), **extra}

    return build


@pytest.fixture(scope="session")
def run_cli(rltrain_bin: Path) -> CliRunner:
    """`run_cli(args, cwd, timeout=180)` runs the installed `rltrain` with `args` in `cwd` and
    returns the CompletedProcess (text stdout/stderr captured; never raises on a non-zero exit)."""

    def run(
        args: Sequence[str], cwd: Path, timeout: float = 180.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(rltrain_bin), *args],
            cwd=cwd,
            env=env if env is not None else cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def start_cli(rltrain_bin: Path) -> Callable[..., subprocess.Popen[str]]:
    """`start_cli(args, cwd)` starts `rltrain` in the background (stdout/stderr to files in cwd),
    for tests that signal a running training."""

    def start(args: Sequence[str], cwd: Path) -> subprocess.Popen[str]:
        # the child keeps its own copies of the descriptors; ours can close at once
        with open(cwd / "stdout.txt", "w") as out, open(cwd / "stderr.txt", "w") as err:
            return subprocess.Popen(
                [str(rltrain_bin), *args], cwd=cwd, env=cli_env(), stdout=out, stderr=err, text=True
            )

    return start


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory for one CLI invocation (its runs/ and multirun/ land here)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """Overrides for a tiny PPO/CartPole run (512 steps, seconds of work)."""
    return list(TINY)


def run_dirs(root: Path) -> list[Path]:
    """Run directories under `root` (those holding .hydra/config.yaml), sorted."""
    return sorted(p.parent.parent for p in root.rglob(".hydra/config.yaml"))


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())  # type: ignore[no-any-return]


def read_event_dir(run_dir: Path) -> Any:
    """An EventAccumulator over every event file in `run_dir` (the training writer, the HParams
    writer, and the resumed writer's files after a resume), reloaded and ready to query."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # size_guidance 0 = keep every event (the default reservoir samples 10,000 scalars per tag).
    accumulator = EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} for every scalar tag in the run directory, in file order."""
    accumulator = read_event_dir(run_dir)
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def assert_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """A user mistake: non-zero exit, exactly one line on stderr starting with `rltrain: error:`,
    and no Python traceback anywhere. Returns the message after the prefix."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"exit 0 for a user error:\n{output}"
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("rltrain: error: "), lines[0]
    return lines[0].removeprefix("rltrain: error: ")


@pytest.fixture(scope="session")
def trained_run(run_cli: CliRunner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One finished tiny PPO/CartPole run, trained once per test session with TRAINED_RUN_ARGS and
    shared by every pytest-xdist worker (a file lock makes the other workers wait for it). Tests
    must not modify it: copy it first. Its stdout/stderr are in `<run>/../../../../train.out`."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the base temp dir shared by this session's xdist workers
    cwd = root / "trained_run"
    with FileLock(str(root / "trained_run.lock")):
        done = cwd / "run_dir.txt"
        if not done.is_file():
            cwd.mkdir(exist_ok=True)
            result = run_cli(TRAINED_RUN_ARGS, cwd)
            (cwd / "train.out").write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
            assert result.returncode == 0, result.stdout + result.stderr
            found = run_dirs(cwd / "runs")
            assert len(found) == 1, found
            done.write_text(str(found[0]))
    yield Path(done.read_text())


# The helpers as fixtures, so test files never import conftest (a second conftest.py elsewhere
# under tests/ would shadow the module name).
@pytest.fixture(scope="session")
def cli_environ() -> Callable[[], dict[str, str]]:
    """`cli_environ()`: a fresh copy of the environment `run_cli` gives the console script."""
    return cli_env


@pytest.fixture(scope="session")
def trained_run_args() -> list[str]:
    return list(TRAINED_RUN_ARGS)


@pytest.fixture(scope="session")
def tb_events() -> Callable[[Path], Any]:
    """`tb_events(run_dir)`: a loaded EventAccumulator over every event file of the run."""
    return read_event_dir


@pytest.fixture(scope="session")
def tb_scalars() -> Callable[[Path], dict[str, list[tuple[int, float]]]]:
    """`tb_scalars(run_dir)`: {tag: [(step, value), ...]} over every event file of the run."""
    return read_scalars


@pytest.fixture(scope="session")
def one_error_line() -> Callable[[subprocess.CompletedProcess[str]], str]:
    """`one_error_line(result)`: asserts a clean user error and returns its message."""
    return assert_one_error_line


@pytest.fixture(scope="session")
def find_run_dirs() -> Callable[[Path], list[Path]]:
    """`find_run_dirs(root)`: run directories (with .hydra/config.yaml) under root, sorted."""
    return run_dirs


@pytest.fixture(scope="session")
def summary_of() -> Callable[[Path], dict[str, Any]]:
    """`summary_of(run_dir)`: the run's summary.json."""
    return read_summary


@pytest.fixture
def learning_run_dir(tmp_path: Path) -> Callable[[str], Path]:
    """`learning_run_dir(name)`: where a slow learning test's run goes: tmp_path/run, or with
    RLTRAIN_TEST_RUNS=DIR set, DIR/name (emptied first), kept for the plot scripts."""

    def where(name: str) -> Path:
        keep = os.environ.get("RLTRAIN_TEST_RUNS")
        if not keep:
            return tmp_path / "run"
        run = Path(keep).resolve() / name
        shutil.rmtree(run, ignore_errors=True)
        return run

    return where
