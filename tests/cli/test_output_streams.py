"""Where the output goes does not decide whether a run finishes: stdout piped into `head -1`
(its reader gone after one line) or closed altogether, the run still trains to its end, writes
its checkpoint and summary, and exits 0 without a traceback."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import torch

RLTRAIN = str(Path(sys.executable).parent / "rltrain")
ARGS = ["total_steps=512", "env.num_envs=2", "algo.n_steps=32", "algo.batch_size=64",
        "algo.n_epochs=2", "eval_episodes=2", "logger.log_interval=64",
        "logger.progress=lines", "device=cpu"]  # fmt: skip


def _assert_finished(run: Path, stderr: str) -> None:
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert (run / "summary.json").is_file()
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 512


def test_piped_into_head_the_run_goes_on_to_its_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = " ".join(shlex.quote(a) for a in [RLTRAIN, *ARGS, f"hydra.run.dir={run}"])
    # PIPESTATUS: rltrain's own exit status, not head's; its stderr into a file of its own
    script = f"{command} 2> {tmp_path / 'err.txt'} | head -1; echo \"${{PIPESTATUS[0]}}\""
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("preset: "), result.stdout  # head's one line
    assert lines[-1] == "0", result.stdout
    _assert_finished(run, (tmp_path / "err.txt").read_text())


def test_with_stdout_closed_the_run_goes_on_to_its_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = subprocess.run(
        [RLTRAIN, *ARGS, f"hydra.run.dir={run}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300, check=False,
        close_fds=True, pass_fds=(), preexec_fn=_close_stdout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    _assert_finished(run, result.stderr)


def _close_stdout() -> None:
    """In the child, before exec: `rltrain ... >&-`."""
    import os

    os.close(1)
