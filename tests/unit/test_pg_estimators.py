"""Estimator checks the policy-gradient family relies on, beyond tests/unit/test_returns.py:
identities on random batches, one env with two episode ends in a rollout, and the A2C/A3C
rollout collector bootstrapping from V(final_obs) across a real vector env's autoreset."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rltrain.algos.actor_critic import RolloutCollector
from rltrain.blocks.returns import (
    discounted_returns,
    episode_returns,
    gae,
    nstep_returns,
    td_errors,
)
from rltrain.envs.vec import GymVecEnv

# small MLPs: one intra-op thread, as the trainer configures it (threads only contend here)
torch.set_num_threads(1)


def random_batch(seed: int, T: int = 12, N: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, N, generator=g)
    values = torch.randn(T, N, generator=g)
    next_values = torch.randn(T, N, generator=g)
    terminated = torch.rand(T, N, generator=g) < 0.15
    truncated = (torch.rand(T, N, generator=g) < 0.15) & ~terminated
    # a critic's next-values: V(s_{t+1}) is the next row's V inside an episode; where an episode
    # ended (and after the last row) it is V of the final observation, unrelated to the next row
    inside = ~(terminated | truncated)
    inside[-1] = False
    next_values[:-1] = torch.where(inside[:-1], values[1:], next_values[:-1])
    return rewards, values, next_values, terminated, truncated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_identities_on_random_batches(seed: int) -> None:
    rewards, values, next_values, term, trunc = random_batch(seed)
    adv0, _ = gae(rewards, values, next_values, term, trunc, 0.97, 0.0)
    assert torch.allclose(adv0, td_errors(rewards, values, next_values, term, 0.97), atol=1e-6)
    adv1, ret1 = gae(rewards, values, next_values, term, trunc, 0.97, 1.0)
    mc = discounted_returns(rewards, next_values, term, trunc, 0.97)
    assert torch.allclose(adv1, mc - values, atol=1e-5)
    assert torch.allclose(ret1, mc, atol=1e-5)
    # n-step with n >= T is the bootstrapped Monte-Carlo return as well
    assert torch.allclose(nstep_returns(rewards, next_values, term, trunc, 0.97, 12), mc, atol=1e-5)


def test_one_env_with_two_episode_ends_in_one_rollout() -> None:
    # One env, T = 6, gamma = 0.5: terminated at t=1, truncated at t=3 (V(final) = 8), then the
    # rollout ends at t=5 (bootstrap V(s_6) = 4). Rewards all 1.
    rewards = torch.ones(6)
    next_values = torch.tensor([100.0, 100.0, 100.0, 8.0, 100.0, 4.0])
    term = torch.tensor([0, 1, 0, 0, 0, 0], dtype=torch.bool)
    trunc = torch.tensor([0, 0, 0, 1, 0, 0], dtype=torch.bool)
    # By hand: episode 1: G1 = 1, G0 = 1 + .5 = 1.5
    #          episode 2: G3 = 1 + .5*8 = 5, G2 = 1 + .5*5 = 3.5
    #          episode 3: G5 = 1 + .5*4 = 3, G4 = 1 + .5*3 = 2.5
    # (next_values of non-final steps (100) must never be used by the MC return)
    expected = torch.tensor([1.5, 1.0, 3.5, 5.0, 2.5, 3.0])
    assert torch.allclose(discounted_returns(rewards, next_values, term, trunc, 0.5), expected)
    # GAE with lambda = 1 and V = 0 everywhere except the bootstraps gives the same numbers
    adv, _ = gae(rewards, torch.zeros(6), next_values * (term | trunc | (torch.arange(6) == 5)),
                 term, trunc, 0.5, 1.0)
    assert torch.allclose(adv, expected)
    # a complete episode's reward-to-go is episode_returns of that episode alone
    assert torch.allclose(episode_returns(rewards[:2], 0.5), expected[:2])


# --- the collector across a real autoreset -------------------------------------------------
class CountingEnv(gym.Env[np.ndarray, np.int64]):
    """obs = [k] at step k of the episode, reward 1 per step; terminates at k = terminate_at
    (if given). A TimeLimit wrapper does the truncating."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None) -> None:
        self.terminate_at = terminate_at
        self.k = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.k = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.k += 1
        return np.array([float(self.k)], np.float32), 1.0, self.k == self.terminate_at, False, {}


class ObsValueNet:
    """A stand-in policy: action 0, V(s) = 10 * obs[0], so V of a final observation differs from
    V of the reset observation (0) that the vector env hands out in its place."""

    discrete = True

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, ...]:
        n = obs.shape[0]
        return torch.zeros(n, dtype=torch.long), torch.zeros(n), self.value(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return 10.0 * obs[:, 0]


def test_collector_bootstraps_from_final_obs_on_truncation_only() -> None:
    # env 0: time limit 2; env 1: time limit 3; env 2: terminates at k = 2 (limit 10)
    makers = [
        lambda: gym.wrappers.TimeLimit(CountingEnv(), max_episode_steps=2),
        lambda: gym.wrappers.TimeLimit(CountingEnv(), max_episode_steps=3),
        lambda: gym.wrappers.TimeLimit(CountingEnv(terminate_at=2), max_episode_steps=10),
    ]
    vector = gym.vector.SyncVectorEnv(makers, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env = GymVecEnv(vector)
    collector = RolloutCollector(env, 5, torch.device("cpu"), env.reset(seed=0))
    rollout = collector.collect(ObsValueNet(), gamma=0.5, gae_lambda=1.0)  # type: ignore[arg-type]
    obs = torch.tensor([[0.0, 1, 0, 1, 0], [0, 1, 2, 0, 1], [0, 1, 0, 1, 0]]).t()
    assert torch.equal(rollout.obs[..., 0], obs)
    # By hand, gamma = 0.5, reward 1 per step:
    # env 0: truncated at rows 1 and 3 (final obs 2: V = 20); after row 4 the next obs is 1 (V 10)
    #   G4 = 1 + .5*10 = 6, G3 = 1 + .5*20 = 11, G2 = 1 + .5*11 = 6.5, G1 = 11, G0 = 6.5
    #   (bootstrapping from the reset observation instead would give G1 = G3 = 1)
    # env 1: truncated at row 2 (final obs 3: V = 30); next obs after row 4 is 2 (V 20)
    #   G4 = 1 + .5*20 = 11, G3 = 1 + .5*11 = 6.5, G2 = 1 + .5*30 = 16, G1 = 9, G0 = 5.5
    # env 2: terminated at rows 1 and 3 (V(final obs) ignored); next obs after row 4 is 1 (V 10)
    #   G4 = 6, G3 = 1, G2 = 1 + .5*1 = 1.5, G1 = 1, G0 = 1.5
    returns = torch.tensor(
        [[6.5, 11.0, 6.5, 11.0, 6.0], [5.5, 9.0, 16.0, 6.5, 11.0], [1.5, 1.0, 1.5, 1.0, 6.0]]
    ).t()
    assert torch.allclose(rollout.returns, returns)
    assert torch.allclose(rollout.advantages, returns - 10.0 * obs)
    assert torch.allclose(rollout.values, 10.0 * obs)
    # GAE(0.5) on the same rollout agrees with the pure function fed the same next-values
    rollout_half = RolloutCollector(env, 5, torch.device("cpu"), env.reset(seed=0)).collect(
        ObsValueNet(), gamma=0.5, gae_lambda=0.5  # type: ignore[arg-type]
    )
    next_values = torch.tensor(
        [[10.0, 20, 10, 20, 10], [10, 20, 30, 10, 20], [10, 20, 10, 20, 10]]
    ).t()
    term = torch.zeros(5, 3, dtype=torch.bool)
    term[[1, 3], 2] = True
    trunc = torch.zeros(5, 3, dtype=torch.bool)
    trunc[[1, 3], 0] = True
    trunc[2, 1] = True
    adv, _ = gae(torch.ones(5, 3), 10.0 * obs, next_values, term, trunc, 0.5, 0.5)
    assert torch.allclose(rollout_half.advantages, adv)
