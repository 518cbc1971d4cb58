"""A NaN/inf in a loss stops the run with one line, and the last checkpoint is good."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

RLTRAIN = str(Path(sys.executable).parent / "rltrain")


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "total_steps=1024", "checkpoint_interval=512", "logger.log_interval=256",
        "logger.progress=none", f"hydra.run.dir={run}", "algo.anneal_lr=false",
    ]
    subprocess.run([RLTRAIN, *args], check=True, stdout=subprocess.DEVNULL)
    good = torch.load(run / "checkpoints" / "last.pt", weights_only=True)

    # Continue the finished run with a learning rate that blows the weights up: the saved
    # config is what `resume` reads, so this injects the fault without a test hook in the code.
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.algo.lr = 1e30
    config.total_steps = 4096
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    (run / "summary.json").unlink()
    result = subprocess.run([RLTRAIN, "resume", str(run)], capture_output=True, text=True)

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rltrain: error: non-finite ")
    assert "at step" in lines[0] and "last good checkpoint" in lines[0]
    after = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert after["step"] == good["step"] == 1024  # nothing non-finite was written
    for tensor in after["algo_state"]["net"].values():
        assert torch.isfinite(tensor).all()
