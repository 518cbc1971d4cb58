"""Gaussian actor-critic options: state-dependent log-std and tanh squashing with the Jacobian
correction (densities integrate to one, act/evaluate agree, bounds hold, bad options rejected)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rltrain.config.schema import NetworkConfig
from rltrain.errors import UserError
from rltrain.networks import ActorCritic

# small MLPs: one intra-op thread, as the trainer configures it (threads only contend here)
torch.set_num_threads(1)

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
BOX_1D = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)  # Pendulum's torque range


def net_for(action_space: gym.Space, **options: object) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(OBS, action_space, NetworkConfig(**options))  # type: ignore[arg-type]


def integrate_density(net: ActorCritic, obs: torch.Tensor, low: float, high: float) -> float:
    """Trapezoid integral of pi(a|s) over [low, high] on a fine grid (1-D actions)."""
    grid = torch.linspace(low, high, 20_001)[1:-1]  # open interval: tanh never reaches +-1
    with torch.no_grad():
        log_prob, _, _ = net.evaluate(obs.expand(len(grid), -1), grid.unsqueeze(-1))
    return float(torch.trapezoid(log_prob.double().exp(), grid.double()))


@pytest.mark.parametrize("state_dependent", [False, True])
def test_squashed_density_integrates_to_one_over_the_box(state_dependent: bool) -> None:
    net = net_for(BOX_1D, squash_actions=True, state_dependent_std=state_dependent,
                  log_std_init=-0.5)
    with torch.no_grad():  # move the mean off centre so the Jacobian term matters
        net.policy_head.bias.fill_(0.7)
    obs = torch.tensor([[0.3, -0.2, 0.9]])
    assert integrate_density(net, obs, -2.0, 2.0) == pytest.approx(1.0, abs=2e-3)
    # without the Jacobian the same samples' Gaussian density does not integrate to one
    grid = torch.linspace(-2.0, 2.0, 20_001)[1:-1]
    mean = net.policy_head(net.actor_trunk(obs)).detach()
    log_std = net._heads(obs)[1].detach()  # type: ignore[union-attr]
    u = torch.atanh(grid / 2.0)
    plain = torch.exp(-0.5 * ((u - mean[0, 0]) / log_std.exp()[0, 0]) ** 2) / (
        log_std.exp()[0, 0] * np.sqrt(2 * np.pi)
    )
    assert float(torch.trapezoid(plain.double(), grid.double())) > 1.2


def test_unsquashed_state_dependent_density_integrates_to_one() -> None:
    net = net_for(BOX_1D, state_dependent_std=True, log_std_init=-1.0)
    obs = torch.tensor([[0.1, 0.5, -0.4]])
    assert integrate_density(net, obs, -8.0, 8.0) == pytest.approx(1.0, abs=1e-3)


def test_squashed_actions_stay_in_the_box_and_act_matches_evaluate() -> None:
    net = net_for(BOX_1D, squash_actions=True, log_std_init=0.5)
    obs = torch.rand(4096, 3) * 2 - 1
    with torch.no_grad():
        actions, log_prob, value = net.act(obs)
        again, _, value2 = net.evaluate(obs, actions)
        mode, _, _ = net.act(obs, deterministic=True)
    assert actions.shape == (4096, 1)
    assert float(actions.abs().max()) < 2.0
    # samples with |u| < 4 round-trip through atanh exactly enough for PPO's ratio
    u_small = (actions.abs() < 2.0 * np.tanh(4.0)).squeeze(-1)
    assert torch.allclose(log_prob[u_small], again[u_small], atol=1e-3)
    assert torch.equal(value, value2)
    mean = net.policy_head(net.actor_trunk(obs)).detach()
    assert torch.allclose(mode, 2.0 * torch.tanh(mean), atol=1e-6)


def test_state_dependent_log_std_depends_on_the_state_and_learns() -> None:
    net = net_for(BOX_1D, state_dependent_std=True, log_std_init=-2.0)
    assert net.log_std is None and net.log_std_head is not None
    obs = torch.rand(64, 3) * 2 - 1
    log_std = net._heads(obs)[1]
    assert log_std is not None
    log_std = log_std.detach()
    assert float(log_std.mean()) == pytest.approx(-2.0, abs=0.1)  # bias init, small head weights
    assert float(log_std.std()) > 0.0
    # a gradient on the entropy reaches the log-std head
    _, entropy, _ = net.evaluate(obs, torch.zeros(64, 1))
    entropy.mean().backward()
    assert net.log_std_head.weight.grad is not None
    assert float(net.log_std_head.weight.grad.abs().sum()) > 0.0


def test_state_independent_default_is_unchanged() -> None:
    net = net_for(BOX_1D)
    assert net.log_std is not None and net.log_std_head is None and not net.squash
    assert torch.equal(net.log_std.data, torch.zeros(1))


@pytest.mark.parametrize(
    "option", [{"state_dependent_std": True}, {"squash_actions": True}, {"log_std_init": -1.0}]
)
def test_gaussian_options_on_a_discrete_space_are_rejected(option: dict[str, object]) -> None:
    with pytest.raises(UserError, match=r"network\.\w+=.*Gaussian-policy option.*discrete"):
        net_for(gym.spaces.Discrete(2), **option)


def test_squashing_an_unbounded_box_is_rejected() -> None:
    with pytest.raises(UserError, match="bounded action box"):
        net_for(gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), squash_actions=True)
