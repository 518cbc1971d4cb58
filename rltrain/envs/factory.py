"""Environment factory: the one place that turns an env config into vector envs (train, eval)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain.config.envs import GymEnvConfig
from rltrain.envs.gym_env import make_gym_env
from rltrain.envs.vec import GymVecEnv, VecEnv
from rltrain.errors import UserError


def check_vectorization(name: str, num_envs: int) -> None:
    if num_envs < 1:
        raise UserError(f"env.num_envs={num_envs} must be at least 1")
    if name not in ("sync", "async", "batched"):
        raise UserError(f"env.vectorization={name} is not known; use sync, async or batched")


def make_single_env(cfg: Any, render_mode: str | None = None) -> gym.Env[Any, Any]:
    """One (unvectorized) env: for tabular models, rendering and the terminal view."""
    # Presets of the gym schema (cartpole, frozen_lake, cliff_walking, taxi, ...) are GymEnvConfig.
    if isinstance(cfg, GymEnvConfig) or cfg.name in ("gym", "cartpole"):
        return make_gym_env(cfg, render_mode)
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
    if cfg.name in ("atari", "gym", "cartpole", "text", "llm") or isinstance(cfg, GymEnvConfig):
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
    if cfg.name in ("atari", "gym", "cartpole", "text", "llm") or isinstance(cfg, GymEnvConfig):
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
    if cfg.name == "llm":
        from rltrain.envs.llm import LLMVecEnv

        return LLMVecEnv(cfg, num_envs=num_envs, seed=seed)
    if cfg.name == "atari":
        from rltrain.envs.atari import make_atari_vec_env

        return make_atari_vec_env(cfg, num_envs=num_envs, seed=seed, training=training)
    check_vectorization(cfg.vectorization, num_envs)
    if not training and getattr(cfg, "random_start", False):
        # Exploring starts are for learning; a policy is scored from the env's own start.
        cfg = replace(cfg, random_start=False)
    if cfg.vectorization == "batched":
        env_id = getattr(cfg, "id", None)  # rltrain's own envs (gridworld, ...) have no id
        if env_id != "CartPole-v1" or getattr(cfg, "entry_point", None):
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


def observation_preprocessing(cfg: Any, space: gym.Space[Any]) -> str:
    """What a policy trained on this env expects as its input, in words: recorded in exported
    policies (`rltrain export`) so that code outside rltrain can feed them."""
    if cfg.name == "atari":
        size, stack = cfg.screen_size, cfg.frame_stack
        return (
            f"ALE game {cfg.game} as env=atari plays it: each step repeats the action for "
            f"frame_skip={cfg.frame_skip} frames (sticky actions p={cfg.repeat_action_probability}"
            f"), takes the max of the last two frames, converts to grayscale, resizes to "
            f"{size}x{size} (cv2 INTER_AREA), and stacks the last {stack} such frames: uint8 "
            f"[batch, {stack}, {size}, {size}] (NCHW, oldest first, zeros after a reset); the "
            "network scales by 1/255 itself"
        )
    if isinstance(space, gym.spaces.Discrete):
        return (
            f"the state index as int64 [batch] in 0..{int(space.n) - 1}; the network one-hot "
            "encodes it itself"
        )
    if isinstance(space, gym.spaces.Box) and space.dtype == np.uint8:
        return f"the env's uint8 observation as it is, [batch, {', '.join(map(str, space.shape))}]"
    if isinstance(space, gym.spaces.Box):
        shape = ", ".join(map(str, space.shape))
        return (
            f"the env's observation as it is, cast to float32 [batch, {shape}]; no normalisation "
            "or clipping"
        )
    return f"observations of {space}"
