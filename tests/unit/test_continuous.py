"""SAC / TD3 / DDPG math and bookkeeping against hand-computed values (rltrain/algos/sac.py,
td3.py, off_policy.py, networks/continuous.py)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rltrain.algos.base import Context
from rltrain.algos.off_policy import ActionScale, check_continuous_env, update_target
from rltrain.algos.sac import (
    SAC,
    actor_loss,
    critic_loss,
    ent_coef_loss,
    soft_q_target,
    squashed_sample,
)
from rltrain.algos.td3 import DDPG, TD3, clipped_double_q_target, smoothed_target_action
from rltrain.config.algos import DDPGConfig, SACConfig, TD3Config
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config, NetworkConfig
from rltrain.envs.factory import make_vec_env
from rltrain.errors import UserError
from rltrain.logging import Recorder
from rltrain.networks.continuous import Critics
from rltrain.networks.distributions import squashed_gaussian_log_prob, tanh_log_det_jacobian

LOG_2PI = math.log(2 * math.pi)


def make(algo_cfg: object, num_envs: int = 1, max_episode_steps: int | None = None) -> object:
    cfg = Config(
        algo=algo_cfg,
        env=GymEnvConfig(id="Pendulum-v1", num_envs=num_envs, max_episode_steps=max_episode_steps),
        network=NetworkConfig(hidden_sizes=[16], activation="relu", ortho_init=False),
        total_steps=1000,
    )
    env = make_vec_env(cfg.env, num_envs=num_envs, seed=0, training=True)
    ctx = Context(
        cfg=cfg, env=env, device=torch.device("cpu"), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(0), run_dir=None,
    )  # fmt: skip
    cls = {"sac": SAC, "td3": TD3, "ddpg": DDPG}[algo_cfg.name]  # type: ignore[attr-defined]
    return cls(algo_cfg, ctx)


# --- the squashed Gaussian ----------------------------------------------------------------------
def test_squashed_log_prob_hand_computed() -> None:
    # u = 0.5 under N(0, 1): log N = -0.125 - log(2 pi)/2; a = tanh(0.5), 1 - a^2 = 0.786448
    u = torch.tensor([[0.5]], dtype=torch.float64)
    zero = torch.zeros_like(u)
    expected = -0.125 - 0.5 * LOG_2PI - math.log(1 - math.tanh(0.5) ** 2)
    assert squashed_gaussian_log_prob(zero, zero, u).item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(-0.803710, abs=1e-6)
    # two dimensions, mean 0.2 / -1, std e^-1 / e^0.5: the terms add
    mean = torch.tensor([[0.2, -1.0]], dtype=torch.float64)
    log_std = torch.tensor([[-1.0, 0.5]], dtype=torch.float64)
    u = torch.tensor([[0.4, -2.0]], dtype=torch.float64)
    by_hand = sum(
        -0.5 * ((ui - m) / math.exp(s)) ** 2 - s - 0.5 * LOG_2PI - math.log(1 - math.tanh(ui) ** 2)
        for ui, m, s in ((0.4, 0.2, -1.0), (-2.0, -1.0, 0.5))
    )
    assert squashed_gaussian_log_prob(mean, log_std, u).item() == pytest.approx(by_hand, rel=1e-12)


def test_tanh_jacobian_stays_finite_where_tanh_saturates() -> None:
    u = torch.tensor([[30.0, -30.0]])
    value = tanh_log_det_jacobian(u)
    # log(1 - tanh(u)^2) = log(4) - 2|u| - 2 log(1 + e^{-2|u|}) ~ log 4 - 60 per dimension
    assert torch.isfinite(value).all()
    assert value.item() == pytest.approx(2 * (math.log(4) - 60), abs=1e-4)


def test_squashed_density_integrates_to_one_over_the_unit_interval() -> None:
    # the Jacobian correction makes pi a density on (-1, 1): integrate it numerically
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001, dtype=torch.float64)
    u = torch.atanh(a).unsqueeze(-1)
    mean = torch.full_like(u, 0.3)
    log_std = torch.full_like(u, math.log(0.7))
    density = squashed_gaussian_log_prob(mean, log_std, u).exp()
    assert torch.trapezoid(density, a).item() == pytest.approx(1.0, abs=1e-4)


def test_squashed_sample_is_tanh_of_the_reparameterised_gaussian() -> None:
    mean, log_std = torch.tensor([[0.5, -0.5]]), torch.tensor([[0.0, -1.0]])
    noise = torch.tensor([[1.0, 2.0]])
    action, log_prob = squashed_sample(mean, log_std, noise)
    u = torch.tensor([[1.5, -0.5 + 2.0 * math.exp(-1.0)]])
    torch.testing.assert_close(action, torch.tanh(u))
    torch.testing.assert_close(log_prob, squashed_gaussian_log_prob(mean, log_std, u))


# --- SAC's losses -------------------------------------------------------------------------------
def test_soft_q_target_hand_computed() -> None:
    # y = r + D (min(2.0, 1.5) - 0.2 * (-0.5)) = 1 + 0.99 * 1.6; a termination (D = 0) gives r
    rewards, discounts = torch.tensor([1.0, 1.0]), torch.tensor([0.99, 0.0])
    next_q = torch.tensor([[2.0, 2.0], [1.5, 1.5]])
    next_log_prob = torch.tensor([-0.5, -0.5])
    y = soft_q_target(rewards, discounts, next_q, next_log_prob, 0.2)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.99 * 1.6, 1.0]))


def test_critic_and_actor_losses_hand_computed() -> None:
    q = torch.tensor([[1.0, 2.0], [3.0, 0.0]])  # [critic, batch]
    y = torch.tensor([0.0, 1.0])
    # 0.5 * (mean(1, 1) + mean(9, 1)) = 0.5 * (1 + 5)
    assert critic_loss(q, y).item() == pytest.approx(3.0)
    # mean(0.1 * log pi - min Q) = mean(0.1 * -1 - 1, 0.1 * -2 - 0)
    log_prob = torch.tensor([-1.0, -2.0])
    assert actor_loss(q, log_prob, torch.tensor(0.1)).item() == pytest.approx((-1.1 - 0.2) / 2)


def test_ent_coef_loss_value_and_direction() -> None:
    log_alpha = torch.tensor([math.log(0.5)], requires_grad=True)
    log_prob = torch.tensor([-1.0, -3.0])  # entropy estimate 2 > target -1
    loss = ent_coef_loss(log_alpha, log_prob, target_entropy=-1.0)
    assert loss.item() == pytest.approx(-(math.log(0.5) * -3.0))
    loss.backward()
    assert log_alpha.grad is not None
    # dL/dlog(alpha) = -mean(log pi + H) = 3 > 0: gradient descent lowers alpha
    assert log_alpha.grad.item() == pytest.approx(3.0)


# --- TD3's targets ------------------------------------------------------------------------------
def test_clipped_double_q_target_hand_computed() -> None:
    rewards, discounts = torch.tensor([1.0, 0.0]), torch.tensor([0.9, 0.0])
    next_q = torch.tensor([[3.0, 5.0], [2.0, 7.0]])
    torch.testing.assert_close(
        clipped_double_q_target(rewards, discounts, next_q), torch.tensor([1.0 + 0.9 * 2.0, 0.0])
    )
    # one critic (DDPG): no minimum, y = r + D Q'
    torch.testing.assert_close(
        clipped_double_q_target(rewards, discounts, next_q[:1]), torch.tensor([1.0 + 2.7, 0.0])
    )


def test_smoothing_noise_is_clipped_then_the_action_is_clipped_to_the_box() -> None:
    next_action = torch.tensor([0.9, -0.2, 0.0, -0.9])
    noise = torch.tensor([3.0, -3.0, 0.5, -1.0])
    # sigma * eps = 0.6, -0.6, 0.1, -0.2 -> clip 0.5 -> 0.5, -0.5, 0.1, -0.2; then clip to [-1, 1]
    out = smoothed_target_action(next_action, noise, noise_std=0.2, noise_clip=0.5)
    torch.testing.assert_close(out, torch.tensor([1.0, -0.7, 0.1, -1.0]))


def test_polyak_target_update() -> None:
    target, online = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        target.weight.fill_(1.0)
        online.weight.fill_(3.0)
    update_target(target, online, 0.005)
    assert target.weight.item() == pytest.approx(1.0 + 0.005 * 2.0)


# --- networks and plumbing ----------------------------------------------------------------------
def test_critic_ensemble_equals_separate_mlps() -> None:
    torch.manual_seed(0)
    cfg = NetworkConfig(hidden_sizes=[8, 5], activation="relu", ortho_init=False)
    critics = Critics(3, 2, 2, cfg)
    obs, actions = torch.randn(7, 3), torch.randn(7, 2)
    out = critics(obs, actions)
    assert out.shape == (2, 7)
    for i in range(2):
        layers: list[nn.Module] = []
        for layer, (w, b) in enumerate(zip(critics.weights, critics.biases, strict=True)):
            linear = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                linear.weight.copy_(w[i].T)
                linear.bias.copy_(b[i, 0])
            layers.append(linear)
            if layer < len(critics.weights) - 1:
                layers.append(nn.ReLU())
        separate = nn.Sequential(*layers)(torch.cat([obs, actions], -1)).squeeze(-1)
        torch.testing.assert_close(out[i], separate)
    # the two critics start different (independent initialisation)
    assert not torch.allclose(out[0], out[1])


def test_action_scale_maps_the_unit_box_to_the_env_box() -> None:
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    scale = ActionScale(gym.spaces.Box(low, high))
    out = scale.to_env(np.array([[-1.0, -1.0], [0.5, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(out, [[-2.0, 0.0], [1.0, 1.0], [2.0, 0.5]])
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("action_space", "words"),
    [
        (gym.spaces.Discrete(2), "use algo=dqn or algo=ppo"),
        (gym.spaces.Box(-np.inf, np.inf, (1,)), "bounded action box"),
    ],
)
def test_check_env_refuses_what_it_cannot_act_in(action_space: gym.Space, words: str) -> None:
    with pytest.raises(UserError, match=words):
        check_continuous_env("sac", gym.spaces.Box(-1, 1, (3,)), action_space)


def test_experience_stores_unit_actions_and_the_true_successor_at_a_time_limit() -> None:
    sac = make(SACConfig(learning_starts=10, batch_size=4, buffer_size=100), max_episode_steps=3)
    assert isinstance(sac, SAC)
    exp = sac.experience
    for _ in range(3):
        exp.step(np.array([[0.5]], dtype=np.float32))
    buf = exp.buffer
    np.testing.assert_allclose(buf.actions[:3, 0, 0], 0.5)  # unit-box units, not env torque 1.0
    assert buf.truncated[:3, 0].tolist() == [False, False, True]
    assert not buf.terminated[:3].any()
    # the stored successor of the cut step is the final observation, not the reset one
    assert not np.allclose(buf.next_obs[2, 0], exp.obs[0])
    np.testing.assert_allclose(buf.next_obs[1, 0], buf.obs[2, 0])
    sample = buf.gather(np.array([2]))
    assert sample.discounts.item() == pytest.approx(0.99)  # a cut bootstraps


def test_sac_alpha_moves_toward_the_target_entropy() -> None:
    # a target entropy far above what the policy has: alpha must grow, far below: shrink
    for target, grows in ((5.0, True), (-50.0, False)):
        torch.manual_seed(0)
        sac = make(SACConfig(learning_starts=10, batch_size=16, buffer_size=100,
                             target_entropy=target))  # fmt: skip
        assert isinstance(sac, SAC)
        for _ in range(20):
            sac.experience.step(sac.experience.random_actions())
        before = sac.alpha().item()
        for _ in range(5):
            sac.update(sac.experience.buffer.sample(16, sac.ctx.rng))
        assert (sac.alpha().item() > before) == grows


def test_fixed_ent_coef_is_not_learned() -> None:
    sac = make(SACConfig(learning_starts=10, batch_size=8, buffer_size=100, ent_coef="0.2"))
    assert isinstance(sac, SAC)
    assert sac.alpha_optimizer is None
    for _ in range(10):
        sac.experience.step(sac.experience.random_actions())
    sac.update(sac.experience.buffer.sample(8, sac.ctx.rng))
    assert sac.alpha().item() == pytest.approx(0.2)


@pytest.mark.parametrize(("algo_cfg", "critics", "actor_steps"), [
    (TD3Config(learning_starts=10, batch_size=8, buffer_size=100), 2, 3),
    (DDPGConfig(learning_starts=10, batch_size=8, buffer_size=100), 1, 6),
])  # fmt: skip
def test_td3_delays_the_actor_and_ddpg_does_not(
    algo_cfg: TD3Config, critics: int, actor_steps: int
) -> None:
    algo = make(algo_cfg)
    assert isinstance(algo, TD3)
    assert algo.critics.n == critics
    for _ in range(10):
        algo.experience.step(algo.experience.random_actions())
    actor_before = [p.clone() for p in algo.target_actor.parameters()]
    for _ in range(6):
        algo.update(algo.experience.buffer.sample(8, algo.ctx.rng))
    assert int(algo.critic_optimizer.steps) == 6
    assert int(algo.actor_optimizer.steps) == actor_steps
    after = list(algo.target_actor.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(actor_before, after, strict=True))


@pytest.mark.parametrize(
    ("cls", "kwargs", "words"),
    [
        (SACConfig, {"tau": 0.0}, r"algo\.tau=0\.0 must be in \(0, 1\]"),
        (SACConfig, {"tau": 1.5}, r"algo\.tau=1\.5"),
        (SACConfig, {"ent_coef": "abc"}, r"algo\.ent_coef=abc is not known; use auto or a number"),
        (SACConfig, {"ent_coef": "-1"}, r"algo\.ent_coef=-1 must be auto or a number >= 0"),
        (SACConfig, {"target_entropy": 1e9}, r"algo\.target_entropy=1000000000\.0 is out of range"),
        (TD3Config, {"target_noise_clip": -0.5}, r"algo\.target_noise_clip=-0\.5 must be in"),
        (TD3Config, {"exploration_noise": 11.0}, r"algo\.exploration_noise=11\.0 must be in"),
        (TD3Config, {"policy_delay": 0}, r"algo\.policy_delay=0 must be at least 1"),
        (DDPGConfig, {"batch_size": 512, "buffer_size": 100}, r"algo\.buffer_size=100 is smaller"),
    ],
)
def test_config_validation(cls: type, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(UserError, match=words):
        cls(**kwargs)
