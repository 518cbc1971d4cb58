"""A2C pieces: reward normalisation statistics, the loss against a hand computation, one update
on CartPole with the diagnostics it logs, and a checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain.algos.a2c import A2C
from rltrain.algos.actor_critic import RewardScaler, Rollout, actor_critic_loss, flat_batch
from rltrain.algos.base import Context
from rltrain.config.algos import A2CConfig
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config
from rltrain.envs.factory import make_vec_env
from rltrain.logging import Recorder
from rltrain.networks import build_actor_critic
from rltrain.networks.hand_backward import Evaluation

# small MLPs: one intra-op thread, as the trainer configures it (threads only contend here)
torch.set_num_threads(1)


def test_reward_scaler_divides_by_the_std_of_the_discounted_return() -> None:
    rng = np.random.default_rng(0)
    scaler = RewardScaler(num_envs=3, gamma=0.9)
    returns = np.zeros(3)
    seen: list[np.ndarray] = []
    for _ in range(200):
        reward = rng.normal(-5.0, 3.0, size=3)
        done = rng.random(3) < 0.05
        scaled = scaler(reward, done)
        # R_t = gamma R_{t-1} + r_t, reset after an episode ends; statistics over every R seen
        returns = returns * 0.9 + reward
        seen.append(returns.copy())
        returns[done] = 0.0
        expected = np.clip(reward / np.sqrt(np.var(np.concatenate(seen)) + 1e-8), -10, 10)
        assert np.allclose(scaled, expected, rtol=1e-3)
    state = scaler.state_dict()
    other = RewardScaler(num_envs=3, gamma=0.9)
    other.load_state_dict(state)
    reward, done = np.ones(3), np.zeros(3, dtype=bool)
    assert np.array_equal(other(reward, done), scaler(reward, done))


def test_actor_critic_loss_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    env = make_vec_env(GymEnvConfig(name="cartpole"), num_envs=1, seed=0, training=True)
    net = build_actor_critic(
        env.single_observation_space, env.single_action_space, Config().network
    )
    obs = torch.randn(3, 2, 4)
    actions = torch.tensor([[0, 1], [1, 1], [0, 0]])
    values = torch.zeros(3, 2)
    advantages = torch.tensor([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]])
    returns = advantages + 1.0
    rollout = Rollout(obs, actions, torch.zeros(3, 2), values, advantages, returns)
    flat_obs, flat_actions, flat_advantages, flat_returns = flat_batch(rollout, False)
    loss, stats = actor_critic_loss(
        Evaluation(*net.evaluate(flat_obs, flat_actions)), flat_advantages, flat_returns,
        vf_coef=0.5, ent_coef=0.01,
    )
    with torch.no_grad():
        logits, v = net(obs.flatten(0, 1))
    log_pi = torch.log_softmax(logits, -1).gather(1, actions.flatten()[:, None]).squeeze(1)
    entropy = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1).mean()
    pg = -(advantages.flatten() * log_pi).mean()
    vf = (v - returns.flatten()).pow(2).mean()
    expected = float(pg + 0.5 * vf - 0.01 * entropy)
    assert float(loss.value.detach()) == pytest.approx(expected, rel=1e-5)
    assert float(stats.entropy) == pytest.approx(float(entropy), rel=1e-5)
    env.close()


def make_a2c(**options: object) -> A2C:
    cfg = A2CConfig(n_steps=5, **options)  # type: ignore[arg-type]
    env_cfg = GymEnvConfig(name="cartpole", num_envs=4)
    root = Config(algo=cfg, env=env_cfg, seed=0, total_steps=1_000)
    ctx = Context(
        cfg=root, env=make_vec_env(env_cfg, num_envs=4, seed=0, training=True),
        device=torch.device("cpu"), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(0), run_dir=None,
    )
    torch.manual_seed(0)
    return A2C(cfg, ctx)


def test_one_update_logs_the_diagnostics_and_moves_the_weights() -> None:
    algo = make_a2c(normalize_rewards=True)
    before = [p.detach().clone() for p in algo.net.parameters()]
    assert algo.iterate() == 20
    after = list(algo.net.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    stats = algo.ctx.recorder.flush(20)
    for tag in ("losses/policy_loss", "losses/value_loss", "policy/entropy", "values/v_mean",
                "values/q_mean", "values/advantage_mean", "values/advantage_std",
                "values/explained_variance", "charts/learning_rate"):
        assert np.isfinite(stats[tag]), tag


def test_checkpoint_round_trip_restores_weights_obs_and_reward_statistics() -> None:
    algo = make_a2c(normalize_rewards=True)
    for _ in range(3):
        algo.iterate()
    state = algo.state_dict()
    fresh = make_a2c(normalize_rewards=True)
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.collector.obs, algo.collector.obs)
    for a, b in zip(fresh.net.parameters(), algo.net.parameters(), strict=True):
        assert torch.equal(a, b)
    scaler_a, scaler_b = fresh.collector.reward_scaler, algo.collector.reward_scaler
    assert scaler_a is not None and scaler_b is not None
    assert (scaler_a.count, scaler_a.mean, scaler_a.var) == (
        scaler_b.count, scaler_b.mean, scaler_b.var
    )
