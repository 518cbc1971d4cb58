"""Environment factory: the one place that turns an env config into vector envs (train, eval)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain.config.envs import GymEnvConfig
from rltrain.envs.vec import GymVecEnv, VecEnv
from rltrain.errors import UserError


def check_vectorization(name: str, num_envs: int) -> None:
    if num_envs < 1:
        raise UserError(f"env.num_envs={num_envs} must be at least 1")
    if name not in ("sync", "async", "batched"):
        raise UserError(f"env.vectorization={name} is not known; use sync, async or batched")


def _check_gym_id(env_id: str) -> None:
    if env_id in gym.registry:
        return
    if env_id.startswith("ALE/"):
        raise UserError(f"env.id={env_id}: use env=atari env.game=<name> for Atari games")
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"env.id={env_id} is not a registered gymnasium environment{hint}")


def _missing_dependency(env_id: str, error: Exception) -> str:
    """One line for an env whose simulator is not installed (MuJoCo, Box2D, ...)."""
    if "mujoco" in str(error).lower():
        return (
            f"env.id={env_id} needs the MuJoCo simulator, which is not installed: "
            "pip install 'rltrain[mujoco]' (the mujoco wheel ships its binaries)"
        )
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"env.id={env_id} needs a package that is not installed: {first}"


def make_single_env(cfg: Any, render_mode: str | None = None) -> gym.Env[Any, Any]:
    """One (unvectorized) env: for tabular models, rendering and the terminal view."""
    # Presets of the gym schema (cartpole, frozen_lake, cliff_walking, taxi, ...) are GymEnvConfig.
    if isinstance(cfg, GymEnvConfig) or cfg.name in ("gym", "cartpole"):
        _check_gym_id(cfg.id)
        kwargs: dict[str, Any] = {"render_mode": render_mode}
        if cfg.max_episode_steps is not None:
            kwargs["max_episode_steps"] = cfg.max_episode_steps
        try:
            return gym.make(cfg.id, **kwargs)
        except gym.error.DependencyNotInstalled as error:
            raise UserError(_missing_dependency(cfg.id, error)) from None
    if cfg.name == "gridworld":
        from rltrain.envs.gridworld import make_gridworld

        return make_gridworld(cfg, render_mode=render_mode)
    if cfg.name == "traffic_light":
        from rltrain.envs.traffic_light import make_traffic_light

        return make_traffic_light(cfg, render_mode=render_mode)
    if cfg.name == "recommender":
        from rltrain.envs.recommender import make_recommender

        return make_recommender(cfg, render_mode=render_mode)
    raise UserError(f"env={cfg.name} has no single-env form")


def env_baselines(cfg: Any) -> dict[str, float]:
    """Reference scores an env computes for itself (optional hook: the unwrapped env's
    `baselines()` -> {name: return per episode}); empty when the env has none."""
    if cfg.name in ("atari", "gym", "cartpole", "text") or isinstance(cfg, GymEnvConfig):
        return {}
    env = make_single_env(cfg)
    try:
        hook = getattr(env.unwrapped, "baselines", None)
        return {str(k): float(v) for k, v in hook().items()} if callable(hook) else {}
    finally:
        env.close()


ExactReturn = Callable[[Callable[[np.ndarray], np.ndarray]], "float | None"]


def exact_return_hook(cfg: Any) -> ExactReturn | None:
    """The env's exact expected return of a deterministic policy (optional hook: the unwrapped
    env's `exact_return(act)`, act mapping a batch of observations to actions), on one env
    built here and kept; None when the env has none."""
    if cfg.name in ("atari", "gym", "cartpole", "text") or isinstance(cfg, GymEnvConfig):
        return None
    hook = getattr(make_single_env(cfg).unwrapped, "exact_return", None)
    return hook if callable(hook) else None


def make_vec_env(cfg: Any, num_envs: int, seed: int, training: bool) -> VecEnv:
    """Vector env of `num_envs` copies with SAME_STEP autoreset; the caller resets it with a seed.

    `training=False` builds the evaluation form (Atari: whole games, raw rewards).
    """
    if cfg.name == "text":
        from rltrain.envs.text import TextVecEnv

        return TextVecEnv(cfg, num_envs=num_envs, seed=seed)
    if cfg.name == "atari":
        from rltrain.envs.atari import make_atari_vec_env

        return make_atari_vec_env(cfg, num_envs=num_envs, seed=seed, training=training)
    check_vectorization(cfg.vectorization, num_envs)
    if not training and getattr(cfg, "random_start", False):
        # Exploring starts are for learning; a policy is scored from the env's own start.
        cfg = replace(cfg, random_start=False)
    if cfg.vectorization == "batched":
        env_id = getattr(cfg, "id", None)  # rltrain's own envs (gridworld, ...) have no id
        if env_id != "CartPole-v1":
            raise UserError(
                f"env.vectorization=batched exists for CartPole-v1 only, not "
                f"env={cfg.name}{f' (env.id={env_id})' if env_id else ''}; "
                "use env.vectorization=sync"
            )
        from rltrain.envs.batched_cartpole import BatchedCartPole

        return BatchedCartPole(num_envs, cfg.max_episode_steps or 500)
    make_single_env(cfg).close()  # validates the id / layout once, in this process
    thunks = [lambda: make_single_env(cfg) for _ in range(num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    vector: gym.vector.VectorEnv
    if cfg.vectorization == "async":
        vector = gym.vector.AsyncVectorEnv(thunks, autoreset_mode=mode)
    else:
        vector = gym.vector.SyncVectorEnv(thunks, autoreset_mode=mode)
    vector.action_space.seed(seed)
    return GymVecEnv(vector)
