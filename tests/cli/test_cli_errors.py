"""User mistakes end with one line on stderr (`rltrain: error: ...`), a non-zero exit and no
traceback, and the line says what is wrong (and, where there is a choice, what to use)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

# A safety net: if a bad override were accepted, the accidental training stays tiny.
_SHORT = ["total_steps=64", "eval_episodes=1"]

TRAIN_CASES = {
    "unknown_algo": (["algo=nope"], [r"algo", r"'nope'", r"\bppo\b", r"\bdqn\b"]),
    "wrong_type": (["algo.lr=abc"], [r"\balgo\.lr\b", r"abc", r"(?i)float"]),
    "unknown_key": (["algo.foo=1"], [r"\balgo\.foo\b", r"(?i)unknown"]),
    "unknown_key_added": (["+algo.foo=1"], [r"\balgo\.foo\b", r"(?i)unknown"]),
    "unknown_top_level_key_added": (["+foo=1"], [r"\bfoo\b", r"(?i)unknown"]),
    "missing_env_id": (["env=gym", "env.id=NoSuchEnv-v0"], [r"NoSuchEnv-v0", r"(?i)registered"]),
    "zero_budget": (["total_steps=0"], [r"total_steps=0", r"at least 1"]),
    "zero_rollout": (["algo.n_steps=0"], [r"algo\.n_steps=0", r"positive"]),
    "unparsable_override": (["algo.lr=[1,"], [r"algo\.lr=\[1,"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_bad_training_input(case, run_cli, workdir, one_error_line):
    args, patterns = TRAIN_CASES[case]
    extra = [a for a in _SHORT if a.split("=")[0] not in {x.split("=")[0] for x in args}]
    message = one_error_line(run_cli([*args, *extra], workdir))
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert not list(workdir.rglob("summary.json")), "a run finished despite the error"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu(run_cli, workdir, one_error_line):
    message = one_error_line(run_cli(["device=cuda", *_SHORT], workdir))
    assert "cuda" in message and "device=cpu" in message
    assert not list(workdir.rglob("checkpoints"))


def test_eval_on_a_missing_directory(run_cli, workdir, one_error_line):
    message = one_error_line(run_cli(["eval", "no/such/run"], workdir))
    assert "no/such/run" in message and "does not exist" in message


def test_eval_on_a_directory_that_is_not_a_run(run_cli, workdir, one_error_line):
    (workdir / "notes").mkdir()
    (workdir / "notes" / "todo.txt").write_text("hello\n")
    message = one_error_line(run_cli(["eval", "notes"], workdir))
    assert "notes" in message and "not an rltrain run directory" in message


def test_resume_on_a_missing_directory(run_cli, workdir, one_error_line):
    message = one_error_line(run_cli(["resume", "runs/nothing"], workdir))
    assert "runs/nothing" in message and "does not exist" in message


def test_summary_on_an_empty_directory(run_cli, workdir, one_error_line):
    (workdir / "empty").mkdir()
    message = one_error_line(run_cli(["summary", "empty"], workdir))
    assert "no finished runs" in message and "empty" in message


def test_list_of_an_unknown_group(run_cli, workdir, one_error_line):
    message = one_error_line(run_cli(["list", "nope"], workdir))
    assert "'nope'" in message and "algo" in message and "env" in message


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)


def test_truncated_checkpoint_without_a_previous_one(trained_run, run_cli, workdir, one_error_line):
    run = workdir / "run"
    shutil.copytree(trained_run, run)
    (run / "checkpoints" / "previous.pt").unlink(missing_ok=True)
    _truncate(run / "checkpoints" / "last.pt")
    message = one_error_line(run_cli(["eval", str(run), "--episodes", "1"], workdir))
    assert "last.pt" in message and "truncated or corrupt" in message


def test_truncated_checkpoint_falls_back_to_the_previous_one(trained_run, run_cli, workdir):
    run = workdir / "run"
    shutil.copytree(trained_run, run)
    checkpoints = run / "checkpoints"
    shutil.copyfile(checkpoints / "last.pt", checkpoints / "previous.pt")
    _truncate(checkpoints / "last.pt")
    result = run_cli(["eval", str(run), "--episodes", "1"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("rltrain: warning:") and "previous.pt" in warnings[0]
    assert re.search(r"^episode\s+1: return [\d.]+$", result.stdout, flags=re.M), result.stdout
    assert "step 512: mean" in result.stdout
    assert os.path.getsize(checkpoints / "previous.pt") > os.path.getsize(checkpoints / "last.pt")


def test_checkpoint_that_does_not_fit_the_configured_model(
    trained_run, run_cli, workdir, one_error_line
):
    """A config edited after training (or a checkpoint from an older rltrain): the weights do not
    fit the network the run's config builds."""
    run = workdir / "run"
    shutil.copytree(trained_run, run)
    config = run / ".hydra" / "config.yaml"
    text = config.read_text()
    assert "hidden_sizes:\n  - 64\n  - 64\n" in text
    config.write_text(text.replace("hidden_sizes:\n  - 64\n  - 64\n", "hidden_sizes:\n  - 16\n"))
    message = one_error_line(run_cli(["eval", str(run), "--episodes", "1"], workdir))
    assert "does not fit" in message and "checkpoints" in message


# --- resource faults: one line each, saying what to do ------------------------------------------
def _permissions_enforced(directory: Path) -> bool:
    """False for root (and some containers): a 0o500 directory is still writable there."""
    probe = directory / "probe"
    try:
        probe.mkdir()
    except PermissionError:
        return True
    probe.rmdir()
    return False


def test_an_unwritable_output_directory(run_cli, workdir, one_error_line):
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() == 0 or not _permissions_enforced(locked):
            pytest.skip("file permissions are not enforced for this user (root)")
        message = one_error_line(run_cli([*_SHORT, f"hydra.run.dir={locked}/run"], workdir))
    finally:
        locked.chmod(0o700)
    assert "Permission denied" in message and "hydra.run.dir=DIR" in message


def test_an_output_directory_with_a_file_in_the_way(run_cli, workdir, one_error_line):
    """Also fails for root, unlike the permission test: mkdir under a regular file."""
    (workdir / "runs").write_text("not a directory\n")
    message = one_error_line(run_cli([*_SHORT, "hydra.run.dir=runs/x"], workdir))
    assert message.startswith("cannot create the output directory runs/x: Not a directory;")
    assert "a file is in the way" in message and "hydra.run.dir=DIR" in message


def test_a_missing_ale_py_names_the_extra(run_cli, workdir, tmp_path, one_error_line):
    """ale-py hidden by a package of the same name that fails to import."""
    hidden = tmp_path / "hidden" / "ale_py"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('ale-py hidden by the test')\n")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(PYTHONPATH=str(hidden.parent), OMP_NUM_THREADS="1")
    message = one_error_line(run_cli(["env=atari", *_SHORT], workdir, env=env))
    assert message == "env=atari needs ale-py: pip install 'rltrain[atari]'"


@pytest.mark.parametrize(
    ("option", "plugin", "extra"),
    [
        ("hydra/launcher/joblib", "hydra-joblib-launcher", "sweep"),
        ("hydra/launcher/ray", "hydra-ray-launcher", "ray"),
        ("hydra/sweeper/optuna", "hydra-optuna-sweeper", "sweep"),
    ],
)
def test_a_missing_launcher_plugin_names_the_extra(option, plugin, extra):
    """What Hydra raises when `hydra/launcher=joblib` is asked for without the plugin (its
    options then lack the plugin's entry); the extras named exist in pyproject.toml."""
    from hydra.errors import MissingConfigException

    from rltrain.config.errors import explain

    group = option.rpartition("/")[0]
    error = MissingConfigException(
        f"In 'config': Could not find '{option}'\n\nAvailable options in '{group}':\n\tbasic",
        missing_cfg_file=option,
        options=["basic"],
    )
    name = option.rpartition("/")[2]
    assert explain(error) == (
        f"{group}={name} needs the {plugin} plugin, which is not installed: "
        f"pip install 'rltrain[{extra}]'"
    )
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert re.search(rf'^{extra} = \[[^\]]*"{plugin}', pyproject, flags=re.M | re.S), extra


def _main_raising(monkeypatch, capsys, error: BaseException) -> tuple[int, list[str]]:
    """Runs rltrain.cli.main() in-process for `rltrain k=v` with training replaced by a function
    that raises `error`; returns the exit code and the stderr lines."""
    from rltrain import cli

    def train(args):
        raise error

    monkeypatch.setattr(cli, "run_hydra", train)
    monkeypatch.setattr(sys, "argv", ["rltrain", "total_steps=64"])
    with pytest.raises(SystemExit) as caught:
        cli.main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return int(caught.value.code), lines  # type: ignore[arg-type]


def test_cuda_out_of_memory_is_one_line(monkeypatch, capsys):
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 7.00 GiB (GPU 0)")
    code, lines = _main_raising(monkeypatch, capsys, oom)
    assert code != 0 and len(lines) == 1
    assert lines[0].startswith("rltrain: error: CUDA out of memory: ")
    for advice in ("algo.batch_size", "env.num_envs", "device=cpu"):
        assert advice in lines[0]


def test_a_full_disk_during_training_is_one_line(monkeypatch, capsys):
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "runs/x/events.out.tfevents.1")
    code, lines = _main_raising(monkeypatch, capsys, full)
    assert code != 0 and len(lines) == 1
    assert lines[0] == (
        f"rltrain: error: cannot write runs/x/events.out.tfevents.1: {os.strerror(errno.ENOSPC)}; "
        "free some disk space or choose another output directory with hydra.run.dir=DIR "
        "(hydra.sweep.dir=DIR for -m)"
    )


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only user mistakes and resource faults become one line; anything else is a bug."""
    from rltrain import cli

    def train(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "run_hydra", train)
    monkeypatch.setattr(sys, "argv", ["rltrain", "total_steps=64"])
    with pytest.raises(ZeroDivisionError):
        cli.main()
