"""CartPole-v1 stepped for all envs at once on numpy arrays (`env.vectorization=batched`).

gymnasium's SyncVectorEnv steps N Python env objects one by one; for CartPole that loop costs
more than the physics. This is the same model as gymnasium's CartPole-v1 — Euler integration with
tau = 0.02, force +-10, the same masses and lengths, termination at |x| > 2.4 or |theta| > 12
degrees, reward 1 on every step including the terminating one, truncation after 500 steps, reset
state uniform in [-0.05, 0.05]^4 — written once over arrays, with SAME_STEP autoreset.
`tests/unit/test_batched_cartpole.py` steps both side by side from identical states and compares.

A population (`parallel_seeds`) steps K seeds' envs as one such program: `blocks=K` gives envs
[k n, (k + 1) n) to seed k, with its own reset RNG and episode list, so that block k draws exactly
what a one-seed run with that seed draws; `block(k)` is seed k's envs as a VecEnv of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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

    def __init__(self, num_envs: int, max_episode_steps: int = 500, blocks: int = 1) -> None:
        assert num_envs % blocks == 0, "every block holds the same number of envs"
        self.num_envs, self.blocks, self.block_size = num_envs, blocks, num_envs // blocks
        self.max_episode_steps = max_episode_steps
        high = np.array([X_LIMIT * 2, np.inf, THETA_LIMIT * 2, np.inf], dtype=np.float32)
        box = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_observation_space: gym.Space[Any] = box
        self.single_action_space: gym.Space[Any] = gym.spaces.Discrete(2)
        self.rngs = [np.random.default_rng() for _ in range(blocks)]
        self.state = np.zeros((num_envs, 4))  # float64, as gymnasium keeps it
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.returns = np.zeros(num_envs)
        # per block: the (returns, lengths) of the episodes finished since the last pop
        self._episodes: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(blocks)]
        self._reward = np.ones(num_envs, dtype=np.float32)

    @property
    def rng(self) -> np.random.Generator:
        return self.rngs[0]

    def _rows(self, block: int) -> slice:
        return slice(block * self.block_size, (block + 1) * self.block_size)

    def reset(self, seed: int | Sequence[int] | None = None) -> np.ndarray:
        """Seeds block k with seed[k] (an int: one block); each block draws its start states."""
        seeds = [seed] if isinstance(seed, int) else list(seed) if seed is not None else None
        assert seeds is None or len(seeds) == self.blocks, "one seed per block"
        for block in range(self.blocks):
            self.reset_block(block, None if seeds is None else seeds[block])
        return self.state.astype(np.float32)

    def reset_block(self, block: int, seed: int | None = None) -> np.ndarray:
        """Block `block` alone: seeded with `seed` (if given), new start states drawn."""
        if seed is not None:
            self.rngs[block] = np.random.default_rng(seed)
        rows = self._rows(block)
        self.state[rows] = self.rngs[block].uniform(-0.05, 0.05, size=(self.block_size, 4))
        self.steps[rows] = 0
        self.returns[rows] = 0.0
        return self.state[rows].astype(np.float32)

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
            ended = np.flatnonzero(done)
            for block in np.unique(ended // self.block_size).tolist():
                rows = ended[ended // self.block_size == block] if self.blocks > 1 else ended
                self._episodes[block].append((self.returns[rows].copy(), self.steps[rows].copy()))
                self.state[rows] = self.rngs[block].uniform(-0.05, 0.05, size=(len(rows), 4))
            self.steps[done] = 0
            self.returns[done] = 0.0
            obs = self.state.astype(np.float32)
        return Transition(obs, self._reward.copy(), terminated, truncated, final_obs)

    def pop_episodes(self, block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Episodes finished since the last call: of every block, or of one."""
        lists = self._episodes if block is None else [self._episodes[block]]
        done = [episode for episodes in lists for episode in episodes]
        for episodes in lists:
            episodes.clear()
        if not done:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate([r for r, _ in done]), np.concatenate([n for _, n in done])

    def state_dict(self, block: int | None = None) -> dict[str, object]:
        """The envs' state; of one block, in the format of a one-block env (one seed's run)."""
        if block is None and self.blocks > 1:
            return {"blocks": [self.state_dict(b) for b in range(self.blocks)]}
        rows = self._rows(block or 0)
        return {
            "state": self.state[rows].copy(),
            "steps": self.steps[rows].copy(),
            "returns": self.returns[rows].copy(),
            "rng": dict(self.rngs[block or 0].bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any], block: int | None = None) -> None:
        if block is None and self.blocks > 1:
            for b, part in enumerate(state["blocks"]):
                self.load_state_dict(part, b)
            return
        rows = self._rows(block or 0)
        self.state[rows] = np.array(state["state"], dtype=np.float64)
        self.steps[rows] = np.array(state["steps"], dtype=np.int64)
        self.returns[rows] = np.array(state["returns"], dtype=np.float64)
        self.rngs[block or 0].bit_generator.state = state["rng"]

    def block(self, block: int) -> CartPoleBlock:
        return CartPoleBlock(self, block)

    def close(self) -> None:
        pass


class CartPoleBlock:
    """Seed k's envs of a population's `BatchedCartPole`, as the trainer loop of that seed's run
    sees its env: its episodes and its state (in a one-seed run's format, for its checkpoint).
    The population steps the whole batch; this view resets its own block but does not step."""

    def __init__(self, envs: BatchedCartPole, block: int) -> None:
        self.envs, self.index = envs, block
        self.num_envs = envs.block_size
        self.single_observation_space = envs.single_observation_space
        self.single_action_space = envs.single_action_space

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        return self.envs.pop_episodes(self.index)

    def state_dict(self) -> dict[str, object]:
        return self.envs.state_dict(self.index)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.envs.load_state_dict(state, self.index)

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.envs.reset_block(self.index, seed)

    def step(self, actions: np.ndarray) -> Transition:
        raise NotImplementedError("a population steps all its envs at once")

    def close(self) -> None:
        pass
