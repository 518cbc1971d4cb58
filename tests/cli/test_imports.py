"""What a command imports: printing a config, help, `list`, shell completion and config or sweep
mistakes import neither torch nor the algorithms (about 1.5 s of start-up here), a run imports
only its own algorithm, and a finished run still runs its exit handlers.

The installed console script runs in a subprocess with a `sitecustomize` module on PYTHONPATH
that writes `sys.modules` to a file from an atexit handler: what the process had imported when
it ended, whichever way it ended. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

PROBE = '''\
import atexit, json, os, sys

def _dump_modules():
    with open(os.environ["RLTRAIN_TEST_MODULES"], "w") as out:
        json.dump(sorted(sys.modules), out)

atexit.register(_dump_modules)
'''

Probe = Callable[..., tuple["subprocess.CompletedProcess[str]", set[str]]]


@pytest.fixture
def imported(
    rltrain_bin: Path, tmp_path: Path, cli_environ: Callable[[], dict[str, str]]
) -> Probe:
    """`imported(args, extra_env=None)` -> (the finished `rltrain args` process, the names of
    the modules it had imported at exit)."""
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "sitecustomize.py").write_text(PROBE)
    work = tmp_path / "work"
    work.mkdir()
    dump = tmp_path / "modules.json"

    def run(
        args: Sequence[str], extra_env: dict[str, str] | None = None
    ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
        env = cli_environ()
        env.update(extra_env or {})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(probe_dir), env.get("PYTHONPATH")]))
        env["RLTRAIN_TEST_MODULES"] = str(dump)
        dump.unlink(missing_ok=True)
        result = subprocess.run(
            [str(rltrain_bin), *args], cwd=work, env=env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert dump.is_file(), f"the probe wrote nothing:\n{result.stdout}\n{result.stderr}"
        return result, set(json.loads(dump.read_text()))

    return run


def heavy(modules: set[str]) -> list[str]:
    """torch and rltrain's algorithm modules among `modules`."""
    return sorted(m for m in modules if m.split(".")[0] == "torch" or m.startswith("rltrain.algos"))


@pytest.mark.parametrize(
    "args",
    [
        ["--cfg", "job"],
        ["--cfg", "job", "algo=dqn", "env=atari"],
        ["algo=dqn", "--cfg", "all"],
        ["--cfg", "job", "--resolve"],
        ["--help"],
        ["train", "--help"],
        ["--info", "defaults"],
        ["list"],
        ["list", "tuned"],
    ],
    ids=" ".join,
)
def test_commands_that_train_nothing_import_no_torch(imported: Probe, args: list[str]) -> None:
    result, modules = imported(args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert not heavy(modules), heavy(modules)


@pytest.mark.parametrize(
    ("args", "shown"),
    [(["--cfg", "job"], "algo:"), (["list"], "tuned"), (["list", "env"], "atari")],
)
def test_printing_a_config_or_the_options_loads_no_typer(
    imported: Probe, args: list[str], shown: str
) -> None:
    """Typer (which imports click and pydantic) is for the other subcommands and --help;
    `--cfg` and training go straight to Hydra, and `list` is listed without it."""
    result, modules = imported(args)
    assert result.returncode == 0 and shown in result.stdout, result.stderr
    assert not {"typer", "click", "pydantic"} & modules


def test_shell_completion_imports_no_torch(imported: Probe) -> None:
    result, modules = imported(
        ["-sc", "query=bash"], {"COMP_LINE": "rltrain algo=", "COMP_POINT": "13"}
    )
    assert result.returncode == 0, result.stderr
    assert "algo=dqn" in result.stdout.split() and "algo=ppo" in result.stdout.split()
    assert not heavy(modules), heavy(modules)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["algo.lr=-1"], "algo.lr=-1.0 must be positive"),
        (["-m", "algo.lr=-1", "total_steps=64"], "algo.lr=-1.0 must be positive"),
        (["-m", "hydra/sweeper=optuna"], "hydra/sweeper=optuna has no search space"),
        (["algo=nope"], "unknown algo 'nope'"),
        (["-m", "seed=0,1", "--cfg", "job"], "Only one of --run, --multirun, --cfg"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_config_and_sweep_mistakes_fail_before_torch(
    imported: Probe, args: list[str], message: str
) -> None:
    result, modules = imported(args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not heavy(modules), heavy(modules)


def test_a_run_imports_its_own_algorithm_only(imported: Probe, tiny: list[str]) -> None:
    """The probe sees torch when it is imported (so the tests above can fail), and a PPO run
    loads PPO but not the replay-based, tabular, planning or bandit algorithms."""
    result, modules = imported(["seed=0", *tiny, "logger=none"])
    assert result.returncode == 0, result.stderr
    assert "done:" in result.stdout
    assert {"torch", "rltrain.algos.ppo"} <= modules
    for other in ("dqn", "tabular", "planning", "bandit", "a3c", "reinforce"):
        assert f"rltrain.algos.{other}" not in modules, other
    assert "rltrain.blocks.buffers" not in modules  # DQN's replay


# --- the exit without teardown -------------------------------------------------------------------
def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_exit_without_teardown_runs_atexit_handlers_and_flushes(tmp_path: Path) -> None:
    code = (
        "import atexit, pathlib, sys, torch\n"
        "from rltrain.cli import exit_without_teardown\n"
        "atexit.register(lambda: pathlib.Path('handler_ran').write_text('yes'))\n"
        "sys.stdout.write('unflushed output')\n"  # no newline: still in the buffer
        "exit_without_teardown(3)\n"
        "print('not reached')\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "unflushed output"
    assert (tmp_path / "handler_ran").read_text() == "yes"


def test_exit_without_teardown_waits_for_a_non_daemon_thread(tmp_path: Path) -> None:
    """A live non-daemon thread keeps the normal exit, which waits for it to finish."""
    code = (
        "import pathlib, threading, time, torch\n"
        "from rltrain.cli import exit_without_teardown\n"
        "def work():\n"
        "    time.sleep(0.5)\n"
        "    pathlib.Path('thread_done').write_text('yes')\n"
        "threading.Thread(target=work).start()\n"
        "exit_without_teardown(0)\n"
        "print('normal exit')\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "normal exit"
    assert (tmp_path / "thread_done").read_text() == "yes"
