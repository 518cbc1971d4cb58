"""DQN math and bookkeeping against hand-computed values (rltrain/algos/dqn.py)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from torch import nn

from rltrain.algos.base import Context
from rltrain.algos.dqn import DQN, dqn_targets, td_loss, td_loss_grad
from rltrain.algos.off_policy import q_bias_sum, returns_to_go, update_target
from rltrain.blocks.buffers import PrioritizedReplay, ReplaySample
from rltrain.blocks.schedules import epsilon_at
from rltrain.config.algos import DQNConfig
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config, NetworkConfig
from rltrain.envs.factory import make_vec_env
from rltrain.errors import UserError
from rltrain.logging import Recorder


def make_dqn(num_envs: int = 2, total_steps: int = 1000, **algo: object) -> DQN:
    cfg = Config(
        algo=DQNConfig(**algo),  # type: ignore[arg-type]
        env=GymEnvConfig(id="CartPole-v1", num_envs=num_envs),
        network=NetworkConfig(hidden_sizes=[16], activation="relu"),
        total_steps=total_steps,
    )
    env = make_vec_env(cfg.env, num_envs=num_envs, seed=0, training=True)
    ctx = Context(
        cfg=cfg,
        env=env,
        device=torch.device("cpu"),
        recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(0),
        run_dir=None,
    )
    return DQN(cfg.algo, ctx)


def linear_q(weight: list[list[float]]) -> nn.Linear:
    """Q(s, .) = W s, a hand-made network (no bias)."""
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def batch_of(
    obs: list[list[float]],
    actions: list[int],
    rewards: list[float],
    next_obs: list[list[float]],
    discounts: list[float],
    weights: list[float] | None = None,
) -> ReplaySample:
    n = len(actions)
    return ReplaySample(
        obs=torch.tensor(obs),
        actions=torch.tensor(actions),
        rewards=torch.tensor(rewards),
        next_obs=torch.tensor(next_obs),
        discounts=torch.tensor(discounts),
        weights=torch.tensor(weights if weights is not None else [1.0] * n),
        indices=np.arange(n),
    )


# --- targets ------------------------------------------------------------------------------------
def test_vanilla_and_double_targets_on_hand_made_values() -> None:
    next_q_target = torch.tensor([[1.0, 5.0, 3.0], [2.0, 0.0, 4.0]])
    next_q_online = torch.tensor([[0.0, 1.0, 9.0], [7.0, 0.0, 0.0]])
    rewards = torch.tensor([1.0, 0.5])
    discounts = torch.tensor([0.9, 0.5])
    vanilla = dqn_targets(rewards, discounts, next_q_target)
    # max_a Q_target(s', a) = 5, 4
    assert torch.allclose(vanilla, torch.tensor([1.0 + 0.9 * 5.0, 0.5 + 0.5 * 4.0]))
    double = dqn_targets(rewards, discounts, next_q_target, next_q_online)
    # argmax_a Q_online = 2, 0 -> Q_target values 3, 2
    assert torch.allclose(double, torch.tensor([1.0 + 0.9 * 3.0, 0.5 + 0.5 * 2.0]))
    # a terminal transition (discount 0) is the reward alone in both
    zero = torch.zeros(2)
    assert torch.allclose(dqn_targets(rewards, zero, next_q_target, next_q_online), rewards)


@pytest.mark.parametrize("double", [False, True])
def test_dqn_targets_use_the_right_network(double: bool) -> None:
    dqn = make_dqn(double=double)
    # 2 observation dims would not fit CartPole's net: swap in hand-made linear networks
    dqn.q_net = linear_q([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # type: ignore[assignment]
    dqn.target_net = linear_q([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # type: ignore[assignment]
    # s' = (1, 0.5): online Q = (1, 0.5, 0.75) -> argmax 0; target Q = (2, 0.5, 1.5) -> max 2
    batch = batch_of([[0.0, 0.0]], [0], [1.0], [[1.0, 0.5]], [0.5])
    expected = 1.0 + 0.5 * 2.0  # both pick action 0 here
    assert dqn.targets(batch).item() == pytest.approx(expected)
    # s' = (0, 1): online Q = (0, 1, 0.5) -> argmax 1 -> target value 1; target max is 3
    batch = batch_of([[0.0, 0.0]], [0], [1.0], [[0.0, 1.0]], [0.5])
    expected = 1.0 + 0.5 * (1.0 if double else 3.0)
    assert dqn.targets(batch).item() == pytest.approx(expected)


# --- loss ---------------------------------------------------------------------------------------
def test_td_loss_values() -> None:
    td = torch.tensor([0.5, -2.0, 3.0])
    ones = torch.ones(3)
    # huber: 0.125, 1.5, 2.5
    assert td_loss(td, ones, "huber").item() == pytest.approx((0.125 + 1.5 + 2.5) / 3)
    assert td_loss(td, ones, "mse").item() == pytest.approx((0.25 + 4.0 + 9.0) / 3)
    weights = torch.tensor([1.0, 0.5, 0.0])
    assert td_loss(td, weights, "huber").item() == pytest.approx((0.125 + 0.75) / 3)


@pytest.mark.parametrize("kind", ["huber", "mse"])
def test_td_loss_grad_is_the_losss_gradient_per_row(kind: str) -> None:
    td = torch.tensor([0.5, -2.0, 3.0])
    weights = torch.tensor([1.0, 0.5, 2.0])
    # by hand: huber l' = clamp(d, -1, 1) -> (0.5, -1, 1); mse l' = 2d -> (1, -4, 6); times w / 3
    slope = [0.5, -1.0, 1.0] if kind == "huber" else [1.0, -4.0, 6.0]
    expected = torch.tensor(slope) * weights / 3
    torch.testing.assert_close(td_loss_grad(td, weights, kind), expected)
    # a population's [K, B]: each row the gradient of its own row's mean
    rows = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, 5, dtype=torch.float64)
    td_loss(rows, w, kind).sum().backward()
    assert rows.grad is not None
    torch.testing.assert_close(td_loss_grad(rows.detach(), w, kind), rows.grad)


def test_loss_applies_importance_weights_and_zero_weight_gives_no_gradient() -> None:
    dqn = make_dqn()
    dqn.q_net = linear_q([[1.0, 0.0], [0.0, 1.0]])  # type: ignore[assignment]
    dqn.target_net = linear_q([[0.0, 0.0], [0.0, 0.0]])  # type: ignore[assignment]
    # targets = rewards (target net outputs 0); Q(s, a) = s[a]
    obs = [[0.3, 0.0], [0.0, 5.0]]
    batch = batch_of(obs, [0, 1], [0.0, 0.0], obs, [0.9, 0.9], weights=[0.25, 0.0])
    terms = dqn.loss(batch)
    assert torch.allclose(terms.td, torch.tensor([0.3, 5.0]))
    # 0.25 * 0.5 * 0.3^2 + 0 * (5 - 0.5), averaged over the batch of 2
    assert terms.loss.item() == pytest.approx(0.25 * 0.5 * 0.09 / 2)
    terms.loss.backward()
    grad = next(dqn.q_net.parameters()).grad
    assert grad is not None
    # only row 0 (action 0) and only the first sample: dL/dW[0,0] = 0.25 * 0.3 * s0 / 2
    assert grad[1].abs().sum().item() == 0.0
    assert grad[0, 0].item() == pytest.approx(0.25 * 0.3 * 0.3 / 2)


def test_prioritized_update_sets_priorities_from_td_errors() -> None:
    dqn = make_dqn(prioritized=True, priority_alpha=0.5, priority_eps=0.0, batch_size=8, lr=1e-9)
    for step in range(20):
        dqn._env_step(step * dqn.num_envs)
    batch = dqn._sample()
    assert batch.weights.max().item() == pytest.approx(1.0)
    with torch.no_grad():
        expected_td = dqn.loss(batch).td.abs().numpy()
    dqn.update(batch)
    tree = dqn.buffer.tree  # type: ignore[union-attr]
    # p = |delta|^alpha (the tiny lr barely moves the net between the two evaluations)
    last = {int(i): k for k, i in enumerate(batch.indices)}  # last duplicate wins
    idx = np.array(list(last))
    got = tree.get(idx)
    assert np.allclose(got, expected_td[list(last.values())] ** 0.5, rtol=1e-4)


# --- epsilon ------------------------------------------------------------------------------------
def test_linear_epsilon_schedule() -> None:
    values = [epsilon_at(p, 1.0, 0.04, 0.16, "linear") for p in (0.0, 0.04, 0.08, 0.16, 0.5, 1.0)]
    assert values == pytest.approx([1.0, 0.76, 0.52, 0.04, 0.04, 0.04])


def test_dqn_epsilon_follows_the_step_budget() -> None:
    dqn = make_dqn(
        total_steps=1000,
        epsilon_fraction=0.5,
        epsilon_start=1.0,
        epsilon_end=0.1,
    )
    assert dqn.epsilon(0) == pytest.approx(1.0)
    assert dqn.epsilon(250) == pytest.approx(0.55)
    assert dqn.epsilon(500) == pytest.approx(0.1)
    assert dqn.epsilon(900) == pytest.approx(0.1)


def test_epsilon_greedy_is_vectorized_and_has_the_right_frequency() -> None:
    dqn = make_dqn()
    q = np.tile([[0.0, 1.0]], (20_000, 1))  # greedy action 1
    assert (dqn._epsilon_greedy(q, 0.0) == 1).all()
    actions = dqn._epsilon_greedy(q, 0.3)
    # P(action 0) = eps / 2 = 0.15; std of the mean is sqrt(0.15 * 0.85 / 20000) = 0.0025
    assert abs((actions == 0).mean() - 0.15) < 0.0125


# --- q_bias -------------------------------------------------------------------------------------
def test_returns_to_go_hand_made() -> None:
    assert np.allclose(returns_to_go(np.array([1.0, 1.0, 1.0]), 0.5), [1.75, 1.5, 1.0])
    # a truncated tail bootstraps: G_t += gamma^(T - t) * 4
    assert np.allclose(returns_to_go(np.array([1.0, 1.0, 1.0]), 0.5, 4.0), [2.25, 2.5, 3.0])


@pytest.mark.parametrize("gamma", [0.1, 0.9, 0.999, 1.0])
def test_returns_to_go_long_episode_matches_the_recursion(gamma: float) -> None:
    rewards = np.random.default_rng(1).normal(size=5000)
    expected = np.empty_like(rewards)
    g = 0.7  # bootstrap
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        expected[t] = g
    assert np.allclose(returns_to_go(rewards, gamma, 0.7), expected, rtol=1e-9, atol=1e-9)


def test_q_bias_hand_made_episode() -> None:
    # G = 1.75, 1.5, 1.0; the last step has no prediction (warm-up): 0.25 + 0.5 over 2 steps
    q = np.array([2.0, 2.0, np.nan])
    total, count = q_bias_sum(q, np.array([1.0, 1.0, 1.0]), 0.5)
    assert (total, count) == (pytest.approx(0.75), 2)
    assert q_bias_sum(np.full(3, np.nan), np.ones(3), 0.5) == (0.0, 0)


def test_dqn_q_bias_averages_transitions_of_finished_episodes() -> None:
    dqn = make_dqn(num_envs=2, gamma=0.5)
    rec = dqn.ctx.recorder
    no = np.zeros(2, dtype=bool)
    obs = np.zeros((2, 4), dtype=np.float32)
    # env 0: Q = 2, 2, 2, rewards 1, 1, 1, terminated: G = 1.75, 1.5, 1 -> 0.25 + 0.5 + 1
    dqn._track_episodes(np.array([2.0, 3.0]), np.array([1.0, 0.0]), no, no, obs)
    dqn._track_episodes(np.array([2.0, 1.0]), np.array([1.0, 2.0]), no, no, obs)
    dqn.diagnostics()
    assert "values/q_bias" not in rec._scalars  # no episode has ended yet
    dqn._track_episodes(
        np.array([2.0, 9.0]), np.array([1.0, 0.0]), np.array([True, False]), no, obs
    )
    # env 1 ends now: Q = 3, 1, 9, 9 and rewards 0, 2, 0, 0: G = 1, 2, 0, 0 -> 2 - 1 + 9 + 9
    dqn._track_episodes(
        np.array([5.0, 9.0]), np.array([0.0, 0.0]), np.array([False, True]), no, obs
    )
    dqn.diagnostics()  # the log window: the mean over all 7 transitions
    assert rec._scalars["values/q_bias"] == pytest.approx([(1.75 + 19.0) / 7])
    # env 0's new episode started from scratch; the next window starts empty
    assert dqn.q_bias.lengths.tolist() == [1, 0]
    dqn.diagnostics()
    assert len(rec._scalars["values/q_bias"]) == 1


def test_truncated_episode_bootstraps_with_the_online_value() -> None:
    dqn = make_dqn(num_envs=1, gamma=0.5)
    dqn.q_net = linear_q([[1.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])  # type: ignore[assignment]
    final = np.array([[3.0, 0.0, 0.0, 0.0]], dtype=np.float32)  # max_a Q(s_T, a) = 6
    no, yes = np.zeros(1, dtype=bool), np.ones(1, dtype=bool)
    dqn._track_episodes(np.array([5.0]), np.array([1.0]), no, yes, final)
    # G = 1 + 0.5 * 6 = 4 -> bias 1 (without the bootstrap it would be 4)
    dqn.diagnostics()
    assert dqn.ctx.recorder._scalars["values/q_bias"] == pytest.approx([1.0])


# --- target network -----------------------------------------------------------------------------
def test_hard_and_polyak_target_updates() -> None:
    online, target = linear_q([[1.0, 2.0]]), linear_q([[5.0, -2.0]])
    update_target(target, online, 0.25)
    assert torch.allclose(target.weight, torch.tensor([[0.25 + 3.75, 0.5 - 1.5]]))
    update_target(target, online, 1.0)
    assert torch.equal(target.weight, online.weight)


def test_target_update_cadence_in_env_steps() -> None:
    dqn = make_dqn(target_update_interval=100, tau=0.5)
    first = next(dqn.q_net.parameters())
    with torch.no_grad():
        first.add_(1.0)
    online, target = first.detach().clone(), next(dqn.target_net.parameters()).detach().clone()
    dqn._maybe_update_target(99)  # no boundary crossed
    assert torch.equal(next(dqn.target_net.parameters()), target)
    dqn._maybe_update_target(350)  # 3 boundaries since step 0: tau_3 = 1 - 0.5^3
    expected = target + (1 - 0.5**3) * (online - target)
    assert torch.allclose(next(dqn.target_net.parameters()), expected)
    dqn._maybe_update_target(399)  # still inside the same interval
    assert torch.allclose(next(dqn.target_net.parameters()), expected)


# --- iterate, config, env checks, checkpoints ---------------------------------------------------
def test_iterate_collects_then_trains_and_respects_the_budget() -> None:
    dqn = make_dqn(num_envs=2, total_steps=90, train_freq=8, gradient_steps=3, learning_starts=20)
    consumed = dqn.iterate()  # 8 vector steps = 16 env steps, still warm-up: no update
    assert consumed == 16 and dqn.updates == 0 and len(dqn.buffer) == 16
    dqn.ctx.step += consumed
    consumed = dqn.iterate()
    assert consumed == 16 and dqn.updates == 3
    dqn.ctx.step = 84  # 6 steps left = 3 vector steps
    assert dqn.iterate() == 6


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("n_steps", 0, "algo.n_steps=0"),
        ("buffer_size", -1, "algo.buffer_size=-1"),
        ("batch_size", 0, "algo.batch_size=0"),
        ("priority_alpha", 1.5, "algo.priority_alpha=1.5 must be in [0, 1]"),
        ("priority_beta_start", -0.1, "algo.priority_beta_start=-0.1"),
        ("epsilon_end", 2.0, "algo.epsilon_end=2.0"),
        ("tau", 0.0, "algo.tau=0.0 must be in (0, 1]"),
        ("tau", 1.5, "algo.tau=1.5"),
        ("loss", "l1", "algo.loss=l1"),
        ("max_grad_norm", 0.0, "algo.max_grad_norm=0.0"),
    ],
)
def test_config_validation(key: str, value: object, words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)):
        DQNConfig(**{key: value})  # type: ignore[arg-type]


def test_check_env_rejects_continuous_actions() -> None:
    import gymnasium as gym

    box = gym.spaces.Box(-1.0, 1.0, (1,))
    with pytest.raises(UserError, match="algo=ppo"):
        DQN.check_env(box, box)
    DQN.check_env(box, gym.spaces.Discrete(3))


@pytest.mark.parametrize("prioritized", [False, True])
def test_checkpoint_round_trip_with_weights_only(prioritized: bool) -> None:
    dqn = make_dqn(prioritized=prioritized, learning_starts=10, train_freq=10, batch_size=8)
    for _ in range(3):
        dqn.ctx.step += dqn.iterate()
    state = dqn.state_dict()
    handle = io.BytesIO()
    torch.save(state, handle)
    handle.seek(0)
    loaded = torch.load(handle, weights_only=True)
    other = make_dqn(prioritized=prioritized, learning_starts=10, train_freq=10, batch_size=8)
    other.load_state_dict(loaded)
    for a, b in zip(dqn.q_net.parameters(), other.q_net.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(dqn.target_net.parameters(), other.target_net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert other.updates == dqn.updates and len(other.buffer) == len(dqn.buffer)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    if prioritized:
        assert isinstance(dqn.buffer, PrioritizedReplay)
        assert isinstance(other.buffer, PrioritizedReplay)
        sample_a = dqn.buffer.sample(8, rng_a, 1.0)
        sample_b = other.buffer.sample(8, rng_b, 1.0)
    else:
        assert not isinstance(dqn.buffer, PrioritizedReplay)
        assert not isinstance(other.buffer, PrioritizedReplay)
        sample_a, sample_b = dqn.buffer.sample(8, rng_a), other.buffer.sample(8, rng_b)
    assert torch.equal(sample_a.obs, sample_b.obs)
    assert torch.equal(sample_a.weights, sample_b.weights)
    # the Adam moments came back too: one more identical step keeps the nets identical
    batch = dqn._sample()
    dqn.update(batch)
    other.update(batch)
    for a, b in zip(dqn.q_net.parameters(), other.q_net.parameters(), strict=True):
        assert torch.allclose(a, b)


def test_checkpoint_can_leave_the_buffer_out() -> None:
    dqn = make_dqn(checkpoint_buffer=False)
    assert "buffer" not in dqn.state_dict()


def test_uniform_batches_split_one_draw_into_minibatches() -> None:
    dqn = make_dqn(batch_size=4)
    for step in range(10):
        dqn._env_step(step * dqn.num_envs)
    batches = list(dqn._uniform_batches(5))
    assert len(batches) == 5
    for batch in batches:
        assert batch.obs.shape == (4, 4) and batch.actions.shape == (4,)
        assert batch.indices.shape == (4,) and torch.equal(batch.weights, torch.ones(4))
        # each row is the stored transition at its index
        rows, envs = batch.indices // 2, batch.indices % 2
        stored = dqn.buffer.obs[rows, envs]  # type: ignore[union-attr]
        assert np.array_equal(batch.obs.numpy(), stored)
