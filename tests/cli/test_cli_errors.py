"""User mistakes end with one line on stderr (`rltrain: error: ...`), a non-zero exit and no
traceback, and the line says what is wrong (and, where there is a choice, what to use)."""

from __future__ import annotations

import os
import re
import shutil
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
