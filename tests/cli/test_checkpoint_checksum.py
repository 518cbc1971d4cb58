"""A flipped byte inside a checkpoint's tensor data (torch does not check its zip's CRCs) is
caught by the checkpoint's own checksum: eval and resume fall back to previous.pt with a
warning; with no previous.pt the bad-input matrix has the one-line refusal."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import torch
from omegaconf import OmegaConf


def _flip_a_tensor_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the largest tensor
    header = 30 + len(info.filename.encode()) + len(info.extra)  # a zip local file header
    data[info.header_offset + header + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_flipped_byte_falls_back_to_previous_with_a_warning(trained_run, run_cli, workdir):
    run = workdir / "run"
    shutil.copytree(trained_run, run)
    last, previous = run / "checkpoints" / "last.pt", run / "checkpoints" / "previous.pt"
    if not previous.is_file():  # the tiny shared run saved once: give it a previous.pt
        shutil.copyfile(last, previous)
    _flip_a_tensor_byte(last)
    # the damage is invisible to torch itself: the file still loads
    torch.load(last, weights_only=True)

    result = run_cli(["eval", str(run), "--episodes", "1"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "does not match its checksum; falling back to" in result.stderr
    assert str(previous) in result.stderr

    # resume too: from previous.pt, to a budget just past it
    (run / "summary.json").unlink()
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.total_steps = int(torch.load(previous, weights_only=True)["step"]) + 64
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    result = run_cli(["resume", str(run)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "falling back to" in result.stderr and "Traceback" not in result.stderr
