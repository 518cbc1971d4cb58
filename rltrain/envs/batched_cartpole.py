"""CartPole-v1 stepped for all envs at once on numpy arrays (`env.vectorization=batched`).

gymnasium's SyncVectorEnv steps N Python env objects one by one; for CartPole that loop costs
more than the physics. This is the same model as gymnasium's CartPole-v1 — Euler integration with
tau = 0.02, force +-10, the same masses and lengths, termination at |x| > 2.4 or |theta| > 12
degrees, reward 1 on every step including the terminating one, truncation after 500 steps, reset
state uniform in [-0.05, 0.05]^4 — written once over arrays, with SAME_STEP autoreset.
`tests/unit/test_batched_cartpole.py` steps both side by side from identical states and compares.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain.envs.vec import Transition

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_LENGTH = 0.5
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4


def cartpole_dynamics(state: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """One Euler step of the cart-pole equations (Barto, Sutton & Anderson 1983) for [N, 4] states.

    theta_acc = (g sin th - cos th * temp) / (l (4/3 - m_p cos^2 th / M)),
    temp = (F + m_p l th_dot^2 sin th) / M,  x_acc = temp - m_p l theta_acc cos th / M.
    """
    x, x_dot, theta, theta_dot = state.T
    force = np.where(actions == 1, FORCE_MAG, -FORCE_MAG)
    cos, sin = np.cos(theta), np.sin(theta)
    temp = (force + POLE_MASS_LENGTH * np.square(theta_dot) * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (
        HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * np.square(cos) / TOTAL_MASS)
    )
    x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
    return np.stack(
        (
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ),
        axis=1,
    )


class BatchedCartPole:
    """N CartPole-v1 envs as one array program; implements the VecEnv protocol."""

    def __init__(self, num_envs: int, max_episode_steps: int = 500) -> None:
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        high = np.array([X_LIMIT * 2, np.inf, THETA_LIMIT * 2, np.inf], dtype=np.float32)
        box = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_observation_space: gym.Space[Any] = box
        self.single_action_space: gym.Space[Any] = gym.spaces.Discrete(2)
        self.rng = np.random.default_rng()
        self.state = np.zeros((num_envs, 4))  # float64, as gymnasium keeps it
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.returns = np.zeros(num_envs)
        self._done_returns: list[np.ndarray] = []
        self._done_lengths: list[np.ndarray] = []
        self._reward = np.ones(num_envs, dtype=np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.state = self.rng.uniform(-0.05, 0.05, size=(self.num_envs, 4))
        self.steps[:] = 0
        self.returns[:] = 0.0
        return self.state.astype(np.float32)

    def step(self, actions: np.ndarray) -> Transition:
        self.state = cartpole_dynamics(self.state, np.asarray(actions))
        self.steps += 1
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (np.abs(x) > X_LIMIT) | (np.abs(theta) > THETA_LIMIT)
        truncated = (self.steps >= self.max_episode_steps) & ~terminated
        final_obs = self.state.astype(np.float32)
        self.returns += 1.0
        done = terminated | truncated
        obs = final_obs
        if done.any():
            self._done_returns.append(self.returns[done].copy())
            self._done_lengths.append(self.steps[done].copy())
            count = int(done.sum())
            self.state[done] = self.rng.uniform(-0.05, 0.05, size=(count, 4))
            self.steps[done] = 0
            self.returns[done] = 0.0
            obs = self.state.astype(np.float32)
        return Transition(obs, self._reward.copy(), terminated, truncated, final_obs)

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._done_returns:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        returns = np.concatenate(self._done_returns)
        lengths = np.concatenate(self._done_lengths)
        self._done_returns.clear()
        self._done_lengths.clear()
        return returns, lengths

    def state_dict(self) -> dict[str, object]:
        return {
            "state": self.state.copy(),
            "steps": self.steps.copy(),
            "returns": self.returns.copy(),
            "rng": dict(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = np.array(state["state"], dtype=np.float64)
        self.steps = np.array(state["steps"], dtype=np.int64)
        self.returns = np.array(state["returns"], dtype=np.float64)
        self.rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        pass
