"""`rltrain eval RUN_DIR --video`: play whole episodes with the trained policy and write MP4s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rltrain.errors import UserError
from rltrain.runner.evaluate import with_epsilon


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
    epsilon: float = 0.0,
) -> list[tuple[Path, float]]:
    """Plays `episodes` whole episodes (Atari: whole games, raw scores) and writes one MP4 per
    episode to `out_dir`; returns (video path, episode return) per episode, so that the scores a
    user reads are those of the games in the videos. With `epsilon` > 0 a uniformly random action
    replaces the policy's with that probability (the Atari evaluation protocol)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if env_cfg.name == "atari":
        return _record_atari(
            act, env_cfg, out_dir, episodes, seed, deterministic, prefix, epsilon
        )
    from rltrain.envs.factory import make_single_env

    env = make_single_env(env_cfg, render_mode="rgb_array")
    choose = with_epsilon(act, epsilon, seed, env.action_space)
    results: list[tuple[Path, float]] = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            frames = [_render(env)]
            done, episode_return = False, 0.0
            while not done:
                action = choose(np.asarray(obs)[None], deterministic)[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                episode_return += float(reward)
                frames.append(_render(env))
                done = terminated or truncated
            fps = float(env.metadata.get("render_fps", 30) or 30)
            path = _write(out_dir / f"{prefix}episode-{episode + 1}.mp4", frames, fps)
            results.append((path, episode_return))
    finally:
        env.close()
    return results


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
    epsilon: float,
) -> list[tuple[Path, float]]:
    from rltrain.envs.atari import make_atari_eval_env

    env = make_atari_eval_env(env_cfg, seed=seed, record=True)
    choose = with_epsilon(act, epsilon, seed, env.single_action_space)
    results: list[tuple[Path, float]] = []
    returns: list[float] = []  # raw scores of the games finished so far, in order
    running = 0.0
    try:
        obs = env.reset(seed=seed)
        while len(results) < episodes:
            step = env.step(choose(obs, deterministic))
            obs = step.obs
            running += float(step.reward[0])
            if step.terminated[0] or step.truncated[0]:
                returns.append(running)
                running = 0.0
            for video in env.pop_videos():
                if len(results) < episodes:
                    path = _write(out_dir / f"{prefix}game-{len(results) + 1}.mp4", video, env.fps)
                    results.append((path, returns[len(results)]))
    finally:
        env.close()
    return results
