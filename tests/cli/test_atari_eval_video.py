"""`rltrain eval RUN_DIR --episodes 3 --video` on an Atari run: per-game raw scores on stdout and
one playable MP4 per whole game (decoded back to frames here).

The run is a tiny PPO training on Breakout whose config cuts games at 800 frames
(`env.max_episode_frames`), so the evaluation and the recorded games end within 200 agent steps
whatever the (untrained) policy does.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.atari
pytest.importorskip("ale_py")
pytest.importorskip("av")
pytest.importorskip("imageio")

from rltrain.envs.video import read_video_frames  # noqa: E402

Runner = Callable[..., "subprocess.CompletedProcess[str]"]

MAX_FRAMES = 800  # emulator frames per game (200 agent steps)
FRAME_SKIP = 4


def test_eval_prints_raw_game_scores_and_writes_playable_videos(
    run_cli: Runner, workdir: Path, find_run_dirs: Callable[[Path], list[Path]]
) -> None:
    train = run_cli(
        [
            "algo=ppo",
            "env=atari",
            "env.num_envs=2",
            "total_steps=256",
            "algo.n_steps=64",
            "algo.batch_size=64",
            "algo.n_epochs=1",
            "eval_episodes=1",
            f"env.max_episode_frames={MAX_FRAMES}",
            "logger.log_interval=128",
            "device=cpu",
        ],
        workdir,
        timeout=300,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")

    result = run_cli(["eval", str(run_dir), "--episodes", "3", "--video"], workdir, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    scores = re.findall(r"episode\s+\d+: return (-?\d+\.\d+)", result.stdout)
    assert len(scores) == 3, result.stdout
    # Breakout's raw score: whole points (bricks are worth 1, 4 or 7), never negative
    assert all(float(s) >= 0 and float(s).is_integer() for s in scores), scores
    assert "mean" in result.stdout

    videos = sorted((run_dir / "videos").glob("*.mp4"))
    assert len(videos) == 3, videos
    assert [f"video: {v}" in result.stdout for v in videos] == [True] * 3
    max_steps = MAX_FRAMES // FRAME_SKIP
    for path in videos:
        frames = read_video_frames(path)
        # full ALE resolution RGB, one frame per agent step plus the reset frame
        assert frames.dtype == np.uint8
        assert frames.shape[1:] == (210, 160, 3), frames.shape
        assert 2 <= frames.shape[0] <= max_steps + 1, frames.shape
        # the game moves: the picture is not one still frame
        assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).max() > 0
