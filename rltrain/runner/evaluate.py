"""Deterministic evaluation on separate envs (Atari: whole games, raw scores)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain.envs.factory import make_vec_env
from rltrain.errors import UserError

EVAL_SEED_OFFSET = 1_000_003  # eval envs never share seeds with training envs
MAX_EVAL_ENVS = 16


def with_epsilon(
    act: Callable[[np.ndarray, bool], np.ndarray], epsilon: float, seed: int, action_space: Any
) -> Callable[[np.ndarray, bool], np.ndarray]:
    """`act` with a uniformly random action in place of the policy's, per env, with probability
    epsilon (the evaluation protocol of Mnih et al. 2015); `act` itself when epsilon is 0."""
    if epsilon <= 0:
        return act
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UserError("eval_epsilon > 0 needs a discrete action space; use eval_epsilon=0")
    rng, count = np.random.default_rng(seed), int(action_space.n)

    def choose(obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions = np.asarray(act(obs, deterministic))
        explore = rng.random(len(actions)) < epsilon
        return np.where(explore, rng.integers(0, count, len(actions)), actions)

    return choose


def evaluate(
    act: Callable[[np.ndarray, bool], np.ndarray],
    env_cfg: Any,
    episodes: int,
    seed: int,
    deterministic: bool = True,
    epsilon: float = 0.0,
) -> np.ndarray:
    """Returns of exactly `episodes` episodes. The eval form of an env (training=False) gives
    raw rewards and whole episodes (Atari: whole games, no life-loss ends, no clipping).

    Each env runs a fixed quota of episodes, so short episodes are not over-represented (taking
    the first N episodes to finish across envs would bias the mean towards failures).
    With `epsilon` > 0 (discrete actions) a uniformly random action replaces the policy's with that
    probability, the evaluation protocol of Mnih et al. 2015 (epsilon = 0.05 on Atari): it also
    keeps a greedy policy that never presses FIRE from stalling a game until its time limit.
    """
    num_envs = max(1, min(episodes, MAX_EVAL_ENVS))
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    env = make_vec_env(env_cfg, num_envs=num_envs, seed=seed + EVAL_SEED_OFFSET, training=False)
    try:
        obs = env.reset(seed=seed + EVAL_SEED_OFFSET)
        returns: list[list[float]] = [[] for _ in range(num_envs)]
        running = np.zeros(num_envs)
        done_count = np.zeros(num_envs, dtype=np.int64)
        choose = with_epsilon(act, epsilon, seed, env.single_action_space)
        while (done_count < quota).any():
            step = env.step(choose(obs, deterministic))
            obs = step.obs
            running += step.reward
            ended = np.flatnonzero(step.terminated | step.truncated)
            for index in ended:
                if done_count[index] < quota[index]:
                    returns[index].append(float(running[index]))
                    done_count[index] += 1
                running[index] = 0.0
        return np.array([r for per_env in returns for r in per_env])
    finally:
        env.close()
