"""Writes that fail under a running training, through the console script: a real disk filling
up during a checkpoint save, and the run directory removed while the run writes into it.

The run directory is a small tmpfs mounted in a private mount namespace (`unshare -rm`, which
needs no root where user namespaces are allowed; as root, `unshare -m`): the first checkpoint
fits, the second does not. torch's zip writer reports the full disk as a RuntimeError
("unexpected pos"), not an OSError; the run must still end in one line, leave no temp file,
and keep the last complete checkpoint loadable. Skipped, with the reason printed, where the
machine does not allow the mount.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

RLTRAIN = str(Path(sys.executable).parent / "rltrain")
# A DQN/CartPole checkpoint with 600 x 600 hidden layers is about 5.8 MB whatever the step (the
# Q and target networks and Adam's two moments; the replay buffer saves only its filled rows,
# well under 0.1 MB at step 1,000): 9 MB holds one and the event files, not a second beside it
# while it is written.
DISK = "9m"
ARGS = [
    "algo=dqn", "total_steps=20000", "checkpoint_interval=500", "eval_interval=0",
    "algo.learning_starts=100", "eval_episodes=1", "logger.progress=none", "device=cpu",
    "network.hidden_sizes=[600,600]",
]  # fmt: skip


def _in_private_tmpfs(mount: Path, script: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) with a fresh tmpfs of DISK on `mount`, in a mount namespace of its own
    (the mount vanishes with it); skipped where neither way of mounting is allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        _skip("no unshare(1) on this machine")
    mount_cmd = f"mount -t tmpfs -o size={DISK} tmpfs {shlex.quote(str(mount))}"
    probe_errors = []
    for flags in (["-rm"], ["-m"]) if os.geteuid() == 0 else (["-rm"],):
        probe = subprocess.run(
            [unshare, *flags, "sh", "-c", mount_cmd], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return subprocess.run(
                [unshare, *flags, "sh", "-c", f"{mount_cmd} && {script}"],
                capture_output=True, text=True, timeout=600, check=False, cwd=tmp,
            )  # fmt: skip
        probe_errors.append(f"unshare {' '.join(flags)}: {probe.stderr.strip()}")
    _skip("mounting a tmpfs is not allowed here (" + "; ".join(probe_errors) + ")")
    raise AssertionError("unreachable")


def _skip(reason: str) -> None:
    print(f"skipped: {reason}", flush=True)  # shown with -s; pytest -rs shows it too
    pytest.skip(reason)


def test_a_disk_that_fills_during_a_save_ends_in_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    mount, kept = tmp_path / "disk", tmp_path / "kept"
    mount.mkdir()
    run = mount / "run"
    command = " ".join(shlex.quote(a) for a in [RLTRAIN, *ARGS, f"hydra.run.dir={run}"])
    # inside the namespace: train, then copy what the disk holds out before it vanishes
    script = (
        f"{command} > {tmp_path / 'out.txt'} 2> {tmp_path / 'err.txt'}; echo rc=$?; "
        f"df -k {shlex.quote(str(mount))} | tail -1; cp -a {shlex.quote(str(run))} {kept}"
    )
    result = _in_private_tmpfs(mount, script, tmp_path)
    assert result.returncode == 0, result.stderr
    code = int(result.stdout.split("rc=")[1].split()[0])
    stderr = (tmp_path / "err.txt").read_text()
    output = (tmp_path / "out.txt").read_text() + stderr

    assert code != 0, output
    assert "Traceback" not in output
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"rltrain: error: cannot write checkpoint {run}/checkpoints/")
    assert "MB free" in lines[0] or "free some disk space" in lines[0]
    assert f"`rltrain resume {run}` continues from it" in lines[0]

    checkpoints = sorted(p.name for p in (kept / "checkpoints").iterdir())
    assert not [name for name in checkpoints if name.endswith(".tmp")], checkpoints
    assert "last.pt" in checkpoints
    saved = torch.load(kept / "checkpoints" / "last.pt", weights_only=True)
    assert 500 <= saved["step"] < 1000  # the first one, which fit, whole
    assert not (kept / "summary.json").exists()


def test_a_run_directory_removed_while_training_ends_in_one_line(start_cli, workdir) -> None:
    run = workdir / "run"
    process = start_cli(
        ["total_steps=10000000", "checkpoint_interval=512", "env.num_envs=2", "algo.n_steps=32",
         "algo.batch_size=64", "logger.progress=none", "device=cpu", f"hydra.run.dir={run}"],
        workdir,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "last.pt").exists():
            assert process.poll() is None, (workdir / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        shutil.rmtree(run)  # what a cleanup script or a user in another shell might do
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    stderr = (workdir / "stderr.txt").read_text()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code != 0 and "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    # the event files or the next checkpoint, whichever the run writes first
    assert lines[0].startswith("rltrain: error: cannot write "), lines[0]
    assert "the run directory vanished while it was written" in lines[0]
