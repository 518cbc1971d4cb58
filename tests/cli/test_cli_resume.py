"""Interrupt a training run (SIGINT, SIGKILL), resume it with `rltrain resume`, and check that it
ends at the configured budget and that its TensorBoard curves have every log step exactly once."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

TOTAL = 4096
LOG_EVERY = 128  # a multiple of the 64-step rollout: log steps are exactly 128, 256, ..., TOTAL
RESUME_ARGS = [
    f"total_steps={TOTAL}",
    "env.num_envs=2",
    "algo.n_steps=32",
    "algo.batch_size=64",
    "algo.n_epochs=2",
    "eval_episodes=2",
    f"logger.log_interval={LOG_EVERY}",
    "checkpoint_interval=256",
    "device=cpu",
    "seed=0",
]
# Flushed once per log window by the recorder: these must cover every log step exactly once.
WINDOW_TAGS = ["losses/policy_loss", "charts/sps", "values/v_mean", "charts/learning_rate"]


def _wait_for_checkpoint(process: subprocess.Popen[str], root: Path, min_step: int) -> Path:
    """The run dir, once its checkpoints/last.pt holds at least `min_step` steps."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended (exit {process.returncode}) before it could be stopped")
        for last in root.glob("runs/cartpole/ppo/*/checkpoints/last.pt"):
            try:
                step = torch.load(last, map_location="cpu", weights_only=True)["step"]
            except Exception:  # replaced between glob and open: look again
                continue
            if step >= min_step:
                return last.parents[1]
        time.sleep(0.05)
    process.kill()
    pytest.fail("no checkpoint within 240 s")


def _assert_every_log_step_once(scalars: dict[str, list[tuple[int, float]]]) -> None:
    expected = list(range(LOG_EVERY, TOTAL + 1, LOG_EVERY))
    for tag in WINDOW_TAGS:
        steps = [step for step, _ in scalars[tag]]
        duplicated = sorted(s for s, n in Counter(steps).items() if n > 1)
        missing = sorted(set(expected) - set(steps))
        extra = sorted(set(steps) - set(expected))
        assert not (duplicated or missing or extra), (
            f"{tag}: duplicated {duplicated}, missing {missing}, unexpected {extra}"
        )
    assert [step for step, _ in scalars["eval/return_mean"]] == [TOTAL]


def test_sigint_saves_a_checkpoint_and_resume_finishes(
    start_cli, run_cli, workdir, summary_of, tb_scalars
):
    process = start_cli(RESUME_ARGS, workdir)
    run = _wait_for_checkpoint(process, workdir, min_step=256)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    stderr = (workdir / "stderr.txt").read_text()
    stdout = (workdir / "stdout.txt").read_text()
    assert code == 128 + signal.SIGINT, stdout + stderr
    assert "Traceback" not in stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    match = re.fullmatch(
        r"rltrain: error: SIGINT at step ([\d,]+): checkpoint saved; continue with "
        r"`rltrain resume (.+)`",
        lines[0],
    )
    assert match, lines[0]
    stopped_at = int(match.group(1).replace(",", ""))
    assert 256 <= stopped_at < TOTAL
    assert Path(match.group(2)) == workdir / run.relative_to(workdir)
    assert not (run / "summary.json").exists()
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == stopped_at

    result = run_cli(["resume", str(run)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming {run}" in result.stdout
    summary = summary_of(run)
    assert summary["steps"] == summary["total_steps"] == TOTAL
    _assert_every_log_step_once(tb_scalars(run))

    # a finished run has nothing to resume
    again = run_cli(["resume", str(run)], workdir)
    assert again.returncode != 0 and "already finished" in again.stderr


def test_sigkill_then_resume_has_no_duplicated_or_missing_log_steps(
    start_cli, run_cli, workdir, summary_of, tb_scalars
):
    process = start_cli(RESUME_ARGS, workdir)
    run = _wait_for_checkpoint(process, workdir, min_step=1024)
    process.kill()  # SIGKILL: no handler, no flush, no final checkpoint
    assert process.wait(timeout=60) == -signal.SIGKILL
    killed_at = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert 1024 <= killed_at["step"] < TOTAL

    result = run_cli(["resume", str(run)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    summary = summary_of(run)
    assert summary["steps"] == summary["total_steps"] == TOTAL
    final = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert final["step"] == TOTAL
    assert len(list(run.glob("events.out.tfevents.*"))) >= 2  # killed writer + resumed writer
    _assert_every_log_step_once(tb_scalars(run))
