"""`make run` is what a new user sees first: the default job (PPO, CartPole-v1, tuned RL Zoo
preset) must end with a deterministic 10-episode evaluation of at least 475, for seeds 0-4.

Through the installed console script, as a user runs it. Slow (about 20-40 s per seed on 2 cores):
`python -m pytest -m slow tests/learning/test_ppo_learning.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RLTRAIN = str(Path(sys.executable).parent / "rltrain")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_default_job_solves_cartpole(seed: int, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [RLTRAIN, f"seed={seed}", "device=cpu", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    print(
        f"\nppo/cartpole seed {seed}: eval {summary['eval_return_mean']:.1f} "
        f"± {summary['eval_return_std']:.1f}, {summary['steps']:,} steps in "
        f"{summary['wall_time']:.1f} s",
        flush=True,
    )
    assert summary["algo"] == "ppo" and summary["env"] == "cartpole"
    assert summary["eval_episodes"] == 10
    assert summary["eval_return_mean"] >= 475.0, summary
