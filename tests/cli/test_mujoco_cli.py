"""env=mujoco: gymnasium's MuJoCo tasks through the optional `mujoco` extra.

Without the simulator a run fails before training with one line naming the extra; the test hides
an installed `mujoco` behind a stand-in package that fails to import, so it checks that line
whether or not the extra is installed. With the extra installed, SAC trains a few hundred steps on
InvertedPendulum-v5 (skipped otherwise).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

TINY_SAC = [
    "algo=sac", "total_steps=300", "algo.learning_starts=100", "algo.batch_size=32",
    "network.hidden_sizes=[16]", "eval_episodes=1", "logger.progress=none", "device=cpu",
]  # fmt: skip


@pytest.mark.parametrize("args", [["env=mujoco"], ["env=gym", "env.id=Hopper-v5"]])
def test_missing_mujoco_gives_one_line_naming_the_extra(
    args: list[str], run_cli, workdir: Path, one_error_line
) -> None:
    fake = workdir / "no_mujoco" / "mujoco"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named mujoco')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(fake.parent)}
    result = run_cli([*TINY_SAC, *args], workdir, env=env)
    message = one_error_line(result)
    assert "needs the MuJoCo simulator, which is not installed" in message
    assert "pip install 'rltrain[mujoco]'" in message


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="the mujoco extra")
def test_sac_trains_on_a_mujoco_task(run_cli, workdir: Path, summary_of, find_run_dirs) -> None:
    result = run_cli([*TINY_SAC, "env=mujoco", "env.id=InvertedPendulum-v5"], workdir)
    assert result.returncode == 0, result.stderr
    (run,) = find_run_dirs(workdir / "runs")
    assert summary_of(run)["steps"] == 300
