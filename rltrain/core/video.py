"""`rltrain eval RUN_DIR --video`: play whole episodes with the trained policy and write MP4s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rltrain.errors import UserError


def _write(path: Path, frames: list[np.ndarray] | np.ndarray, fps: float) -> Path:
    try:
        from rltrain.envs.video import write_mp4
    except ImportError as error:  # imageio / av are in the atari extra
        raise UserError("--video needs imageio and av: pip install 'rltrain[atari]'") from error
    return write_mp4(path, frames, fps=fps)


def record_episodes(
    act: Callable[[np.ndarray, bool], np.ndarray],
    env_cfg: Any,
    out_dir: Path,
    episodes: int,
    seed: int,
    deterministic: bool,
    prefix: str = "",
) -> list[Path]:
    """One MP4 per episode (Atari: per whole game, at the full ALE resolution) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if env_cfg.name == "atari":
        return _record_atari(act, env_cfg, out_dir, episodes, seed, deterministic, prefix)
    from rltrain.envs.factory import make_single_env

    env = make_single_env(env_cfg, render_mode="rgb_array")
    paths = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            frames = [_render(env)]
            done = False
            while not done:
                action = act(np.asarray(obs)[None], deterministic)[0]
                obs, _, terminated, truncated, _ = env.step(action)
                frames.append(_render(env))
                done = terminated or truncated
            fps = float(env.metadata.get("render_fps", 30) or 30)
            paths.append(_write(out_dir / f"{prefix}episode-{episode + 1}.mp4", frames, fps))
    finally:
        env.close()
    return paths


def _render(env: Any) -> np.ndarray:
    try:
        frame = env.render()
    except Exception as error:  # e.g. gymnasium's DependencyNotInstalled for pygame renderers
        raise UserError(
            f"this environment cannot render frames for --video ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); "
            "classic-control envs need: pip install pygame"
        ) from error
    if frame is None:
        raise UserError("this environment has no rgb_array render mode; --video is not possible")
    return np.asarray(frame)


def _record_atari(
    act: Callable[[np.ndarray, bool], np.ndarray],
    env_cfg: Any,
    out_dir: Path,
    episodes: int,
    seed: int,
    deterministic: bool,
    prefix: str,
) -> list[Path]:
    from rltrain.envs.atari import make_atari_eval_env

    env = make_atari_eval_env(env_cfg, seed=seed, record=True)
    paths: list[Path] = []
    try:
        obs = env.reset(seed=seed)
        while len(paths) < episodes:
            obs = env.step(act(obs, deterministic)).obs
            for video in env.pop_videos():
                if len(paths) < episodes:
                    paths.append(
                        _write(out_dir / f"{prefix}game-{len(paths) + 1}.mp4", video, env.fps)
                    )
    finally:
        env.close()
    return paths
