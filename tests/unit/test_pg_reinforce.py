"""REINFORCE: whole-episode collection across vector envs, Monte-Carlo returns, truncation
bootstrap, and the per-episode gradient-variance diagnostic against a loop of backward passes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rltrain.algos.base import Context
from rltrain.algos.reinforce import Reinforce, per_episode_gradient_variance
from rltrain.blocks.returns import episode_returns
from rltrain.config.algos import ReinforceConfig
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config
from rltrain.envs.vec import GymVecEnv
from rltrain.errors import UserError
from rltrain.logging import Recorder

# small MLPs: one intra-op thread, as the trainer configures it (threads only contend here)
torch.set_num_threads(1)


class FixedLengthEnv(gym.Env[np.ndarray, np.int64]):
    """obs = [k, 1], reward k + 1 at step k; terminates after `length` steps."""

    observation_space = gym.spaces.Box(-100.0, 100.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int) -> None:
        self.length, self.k = length, 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.k = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.k += 1
        obs = np.array([float(self.k), 1.0], np.float32)
        return obs, float(self.k), self.k == self.length, False, {}


def make_algo(lengths: list[int], episodes: int, time_limit: int | None = None,
              **options: Any) -> Reinforce:
    def maker(length: int) -> Any:
        def make() -> gym.Env[Any, Any]:
            env: gym.Env[Any, Any] = FixedLengthEnv(length)
            if time_limit is not None:
                env = gym.wrappers.TimeLimit(env, max_episode_steps=time_limit)
            return env

        return make

    vector = gym.vector.SyncVectorEnv(
        [maker(n) for n in lengths], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    cfg = ReinforceConfig(episodes_per_update=episodes, **options)
    root = Config(algo=cfg, env=GymEnvConfig(), seed=0, total_steps=10_000)
    ctx = Context(
        cfg=root, env=GymVecEnv(vector), device=torch.device("cpu"),
        recorder=Recorder(None, enabled=False), rng=np.random.default_rng(0), run_dir=None,
    )
    torch.manual_seed(0)
    return Reinforce(cfg, ctx)


def test_each_env_contributes_exactly_its_first_episodes() -> None:
    # env 0 episodes last 2 steps, env 1 episodes 5 steps; 2 episodes per env
    algo = make_algo([2, 5], episodes=4, gamma=0.5)
    batch, steps = algo.collect()
    # the slow env needs 10 steps; both envs were stepped 10 times, env 0's extra 6 discarded
    assert steps == 20
    assert batch.num_episodes == 4
    assert batch.returns.shape == (2 + 2 + 5 + 5,)
    # episode ids: env n's j-th episode is 2n + j; steps come out time-major
    counts = torch.bincount(batch.episode, minlength=4).tolist()
    assert counts == [2, 2, 5, 5]
    # the charts get exactly these episodes (undiscounted): 1 + 2 = 3 and 1 + ... + 5 = 15
    assert batch.episode_lengths.tolist() == [2, 2, 5, 5]
    assert batch.episode_returns.tolist() == [3.0, 3.0, 15.0, 15.0]
    assert len(algo.ctx.env.pop_episodes()[0]) == 0  # the env's own list (with extras) is drained
    for episode, length in zip(range(4), [2, 2, 5, 5], strict=True):
        rewards = torch.arange(1, length + 1, dtype=torch.float32)
        expected = episode_returns(rewards, 0.5)
        assert torch.allclose(batch.returns[batch.episode == episode], expected)
        assert torch.equal(batch.obs[batch.episode == episode][:, 0], torch.arange(length).float())


def test_truncation_bootstraps_from_the_critic_only_with_a_baseline() -> None:
    # episodes of 10 steps cut by a time limit of 3 (obs after the cut is [3, 1])
    for baseline in (True, False):
        algo = make_algo([10], episodes=1, time_limit=3, gamma=0.5, baseline=baseline)
        batch, _ = algo.collect()
        with torch.no_grad():
            v_final = float(algo.net.value(torch.tensor([[3.0, 1.0]])))
        bootstrap = v_final if baseline else 0.0
        g2 = 3.0 + 0.5 * bootstrap
        expected = torch.tensor([1.0 + 0.5 * (2.0 + 0.5 * g2), 2.0 + 0.5 * g2, g2])
        assert torch.allclose(batch.returns, expected, atol=1e-5)


def test_episodes_per_update_must_split_evenly_over_envs() -> None:
    with pytest.raises(UserError, match=r"algo.episodes_per_update=3 must be a multiple of"):
        make_algo([2, 2], episodes=3)


def test_gradient_variance_matches_a_loop_of_backward_passes() -> None:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    obs = torch.randn(11, 3)
    actions = torch.randint(0, 2, (11,))
    log_probs = torch.log_softmax(net(obs), -1).gather(1, actions[:, None]).squeeze(1)
    episode = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    weights = torch.randn(2, 11)
    params = list(net.parameters())
    got = per_episode_gradient_variance(log_probs, weights, episode, 4, params)

    for w in range(2):
        grads = []
        for i in range(4):
            loss = (weights[w] * log_probs * (episode == i)).sum()
            g = torch.autograd.grad(loss, params, retain_graph=True)
            grads.append(torch.cat([x.flatten() for x in g]))
        stacked = torch.stack(grads)
        expected = stacked.var(dim=0, unbiased=True).sum()
        assert float(got[w]) == pytest.approx(float(expected), rel=1e-5)


def test_baseline_lowers_the_logged_gradient_variance() -> None:
    # On a batch where the return is mostly a state-independent offset, a fitted baseline removes
    # most of it: with an exact offset baseline, variance drops sharply.
    algo = make_algo([4, 6, 5, 7], episodes=8, gamma=1.0, lr=1e-2)
    for _ in range(60):  # fit V (and move the policy a little)
        algo.iterate()
    algo.ctx.recorder.flush(0)
    algo.iterate()
    stats = algo.ctx.recorder.flush(1)
    assert stats["policy/grad_variance"] < stats["policy/grad_variance_no_baseline"]
