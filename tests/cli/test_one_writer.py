"""One writer per run directory, through the console script: real processes racing for one run.

A training run holds `<run>/.lock` while it writes; `rltrain resume` and a second `rltrain
hydra.run.dir=<run>` on it are refused with one line naming the holder's PID, and nothing of the
live run (its config, checkpoints, event files) is touched by them. Two resumes started at once
on a stopped run: exactly one trains, the other is refused.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

# Long enough to still be training while the others try; checkpoints early and often.
LIVE_ARGS = [
    "total_steps=10000000", "checkpoint_interval=512", "env.num_envs=2", "algo.n_steps=32",
    "algo.batch_size=64", "algo.n_epochs=2", "eval_episodes=1", "eval_interval=0",
    "logger.progress=none", "device=cpu", "seed=0",
]  # fmt: skip


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"training ended (exit {process.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM (a checkpoint is written), then the exit code; SIGKILL only if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def _event_pids(run: Path) -> set[str]:
    # events.out.tfevents.<time>.<host>.<pid>.<n>: the writer's PID is in the file name
    return {path.name.split(".")[-2] for path in run.glob("events.out.tfevents.*")}


def test_resume_and_train_on_a_live_run_are_refused_with_its_pid(
    start_cli, run_cli, workdir, one_error_line
):
    run = workdir / "live"
    live = start_cli([*LIVE_ARGS, f"hydra.run.dir={run}"], workdir)
    try:
        _wait_for(run / "checkpoints" / "last.pt", live)
        config = (run / ".hydra" / "config.yaml").read_bytes()
        overrides = (run / ".hydra" / "overrides.yaml").read_bytes()

        message = one_error_line(run_cli(["resume", str(run)], workdir))
        assert f"{run} is being written by another rltrain process (PID {live.pid})" in message
        message = one_error_line(
            run_cli(["total_steps=64", "logger.progress=none", f"hydra.run.dir={run}"], workdir)
        )
        assert f"being written by another rltrain process (PID {live.pid})" in message

        # readers take no lock: eval and summary work on the live run
        evaluated = run_cli(["eval", str(run), "--episodes", "1"], workdir)
        assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
        assert run_cli(["summary", str(workdir)], workdir).returncode != 0  # no finished run yet

        assert live.poll() is None, "the live run died while the others were refused"
        # the refused commands wrote nothing into the live run
        assert (run / ".hydra" / "config.yaml").read_bytes() == config
        assert (run / ".hydra" / "overrides.yaml").read_bytes() == overrides
        assert _event_pids(run) == {str(live.pid)}
        assert not (run / "summary.json").exists()
    finally:
        code = _stop(live)
    stderr = (workdir / "stderr.txt").read_text()
    assert code == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "SIGTERM at step" in stderr
    assert not (run / ".lock").exists()  # released on the way out
    torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # and its checkpoint whole


def test_two_resumes_racing_for_one_run_one_trains_the_other_is_refused(
    start_cli, run_cli, workdir, tmp_path
):
    run = workdir / "run"
    first = start_cli([*LIVE_ARGS, f"hydra.run.dir={run}"], workdir)
    _wait_for(run / "checkpoints" / "last.pt", first)
    assert _stop(first) == 128 + signal.SIGTERM

    # both started at once, each from its own working directory (their output files apart)
    cwds = [tmp_path / "a", tmp_path / "b"]
    racers = []
    for cwd in cwds:
        cwd.mkdir()
        racers.append(start_cli(["resume", str(run)], cwd))
    try:
        deadline = time.monotonic() + 240
        while all(r.poll() is None for r in racers) and time.monotonic() < deadline:
            time.sleep(0.05)
        losers = [i for i, r in enumerate(racers) if r.poll() is not None]
        assert len(losers) == 1, "neither resume was refused within 240 s"
        loser, winner = losers[0], 1 - losers[0]
        stderr = (cwds[loser] / "stderr.txt").read_text()
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert racers[loser].returncode != 0 and "Traceback" not in stderr
        assert lines == [
            f"rltrain: error: {run} is being written by another rltrain process "
            f"(PID {racers[winner].pid}); wait for it to end (or stop it), or train into another "
            "directory"
        ], stderr
        assert racers[winner].poll() is None  # the winner trains on, undisturbed
    finally:
        codes = [_stop(r) for r in racers]
    assert codes[winner] == 128 + signal.SIGTERM
    # the run's writers: the first training, then the winner only
    assert _event_pids(run) == {str(first.pid), str(racers[winner].pid)}
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] > 0 and not (run / ".lock").exists()
    # and once nobody holds it, the run resumes again (to a budget just past its checkpoint)
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.total_steps = int(saved["step"]) + 64
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    result = run_cli(["resume", str(run)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
