"""TRPO's math against closed forms (rltrain/algos/trpo.py): the surrogate, the two KLs,
conjugate gradient, the trust-region step, and one policy step on a real rollout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from rltrain.algos.base import Context
from rltrain.algos.trpo import (
    TRPO,
    categorical_kl,
    conjugate_gradient,
    gaussian_kl,
    surrogate,
    trust_region_step,
)
from rltrain.config.algos import TRPOConfig
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config, NetworkConfig
from rltrain.envs.factory import make_vec_env
from rltrain.errors import UserError
from rltrain.logging import Recorder


def test_surrogate_hand_computed() -> None:
    # ratios e^0.1 and e^-0.2 times advantages 2 and -1
    log_prob, old, adv = torch.tensor([0.1, -0.2]), torch.zeros(2), torch.tensor([2.0, -1.0])
    value = surrogate(log_prob, old, adv)
    assert value.item() == pytest.approx((2 * math.exp(0.1) - math.exp(-0.2)) / 2)


def test_kls_match_torch_distributions() -> None:
    torch.manual_seed(0)
    old, new = torch.randn(5, 3), torch.randn(5, 3)
    expected = kl_divergence(Categorical(logits=old), Categorical(logits=new))
    torch.testing.assert_close(categorical_kl(old, new), expected)
    m0, s0, m1, s1 = (torch.randn(5, 2) for _ in range(4))
    expected = kl_divergence(Normal(m0, s0.exp()), Normal(m1, s1.exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(m0, s0, m1, s1), expected)
    # by hand, N(0, 1) || N(1, e^2): log(e / 1) + (1 + (0 - 1)^2) / (2 e^2) - 1/2
    one = gaussian_kl(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1))
    assert one.item() == pytest.approx(1 + 2 / (2 * math.e**2) - 0.5)


def test_conjugate_gradient_solves_an_spd_system() -> None:
    a = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=3)  # exact in n = 3 steps
    torch.testing.assert_close(x, torch.linalg.solve(a, b))
    one_step = conjugate_gradient(lambda v: a @ v, b, iters=1)
    # one step: x = (b'b / b'Ab) b
    torch.testing.assert_close(one_step, (b @ b) / (b @ a @ b) * b)


def test_trust_region_step_lands_on_the_kl_boundary() -> None:
    fisher = torch.tensor([[2.0, 0.0], [0.0, 8.0]])
    x = torch.tensor([1.0, 1.0])
    step = trust_region_step(x, fisher @ x, max_kl=0.05)
    # (1/2) step' F step = delta
    assert (0.5 * step @ fisher @ step).item() == pytest.approx(0.05)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_policy_step_stays_in_the_trust_region_and_improves(env_id: str) -> None:
    torch.manual_seed(0)
    cfg = Config(
        algo=TRPOConfig(n_steps=64, max_kl=0.01, n_epochs=1, batch_size=64),
        env=GymEnvConfig(id=env_id, num_envs=2), network=NetworkConfig(hidden_sizes=[16]),
        total_steps=1000,
    )  # fmt: skip
    env = make_vec_env(cfg.env, num_envs=2, seed=0, training=True)
    ctx = Context(
        cfg=cfg, env=env, device=torch.device("cpu"), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(0), run_dir=None,
    )  # fmt: skip
    trpo = TRPO(cfg.algo, ctx)
    rollout = trpo.collector.collect(trpo.net, 0.99, 0.95)
    obs, actions = rollout.obs.flatten(0, 1), rollout.actions.flatten(0, 1)
    adv = rollout.advantages.flatten()
    adv = (adv - adv.mean()) / adv.std()
    with torch.no_grad():
        old = trpo.net.policy(obs)
        old_log_prob = trpo.net.evaluate(obs, actions)[0]
        critic_before = [p.clone() for p in trpo.critic_params]
    trpo.policy_step(obs, actions, adv)
    with torch.no_grad():
        kl = trpo.mean_kl(obs, old).item()
        # L(theta_old) = mean(A): every ratio is 1
        gain = surrogate(trpo.net.evaluate(obs, actions)[0], old_log_prob, adv) - adv.mean()
    assert 0 < kl <= 0.01 + 1e-6
    assert gain.item() > 0
    # the policy step leaves the critic alone
    assert all(torch.equal(a, b) for a, b in zip(critic_before, trpo.critic_params, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_kl": 0.0}, r"algo\.max_kl=0\.0 must be in \(0, 1\]"),
        ({"cg_iters": 0}, r"algo\.cg_iters=0 must be in \[1, 1000\]"),
        ({"line_search_shrink": 1.0}, r"algo\.line_search_shrink=1\.0 must be in \(0, 1\)"),
        ({"cg_damping": -1.0}, r"algo\.cg_damping=-1\.0 must be >= 0"),
    ],
)
def test_config_validation(kwargs: dict[str, float], words: str) -> None:
    with pytest.raises(UserError, match=words):
        TRPOConfig(**kwargs)  # type: ignore[arg-type]
