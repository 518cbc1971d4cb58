"""Issue 8: a run killed with SIGKILL at a random point and resumed ends with the same weights
and the same logged scalars as the uninterrupted run (CPU, sync envs)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

RLTRAIN = str(Path(sys.executable).parent / "rltrain")

CASES = {
    "ppo_cartpole_sync": [
        "algo=ppo", "env=cartpole", "env.vectorization=sync", "total_steps=6144",
        "checkpoint_interval=512", "logger.log_interval=256",
    ],
    "ppo_cartpole_batched": [
        "algo=ppo", "env=cartpole", "total_steps=6144", "checkpoint_interval=512",
        "logger.log_interval=256",
    ],
}


def scalars(run_dir: Path) -> dict[str, dict[int, list[float]]]:
    """Every scalar point as TensorBoard shows it: one accumulator over the directory, so the
    resumed writer's purge of stale events is applied."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    points: dict[str, dict[int, list[float]]] = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            points.setdefault(tag, {}).setdefault(event.step, []).append(event.value)
    return points


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return state["algo_state"]


def flat_tensors(tree: object, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(flat_tensors(value, f"{prefix}{key}."))
    elif isinstance(tree, torch.Tensor):
        out[prefix] = tree
    return out


def kill_and_resume(args: list[str], run_dir: Path, delay: float) -> int:
    process = subprocess.Popen(
        [RLTRAIN, *args, "logger.progress=none", f"hydra.run.dir={run_dir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.02)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"])
    resumed = subprocess.run([RLTRAIN, "resume", str(run_dir)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    return killed_at


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_and_resumed_run_matches_uninterrupted(case: str, tmp_path: Path) -> None:
    args = CASES[case]
    full = tmp_path / "full"
    subprocess.run(
        [RLTRAIN, *args, "logger.progress=none", f"hydra.run.dir={full}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cut = tmp_path / "cut"
    delay = random.Random(os.getpid()).uniform(0.0, 0.6)
    killed_at = kill_and_resume(args, cut, delay)
    total = int(next(a for a in args if a.startswith("total_steps=")).split("=")[1])
    assert killed_at < total

    reference, resumed = flat_tensors(weights(full)), flat_tensors(weights(cut))
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), f"{key} differs after resume"

    a, b = scalars(full), scalars(cut)
    assert a.keys() == b.keys()
    for tag in a:
        if tag == "charts/sps":  # wall-clock speed: the only scalar allowed to differ
            assert a[tag].keys() == b[tag].keys()
            continue
        assert a[tag] == b[tag], f"{tag} differs (killed at step {killed_at})"
