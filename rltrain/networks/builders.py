"""Trunks and heads. `network.name=auto` picks the trunk from the observation space."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltrain.config.schema import NetworkConfig
from rltrain.errors import UserError
from rltrain.networks import distributions as D

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def is_image_space(space: gym.Space[Any]) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def init_layer(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class OneHot(nn.Module):
    """Discrete observations (gridworld, FrozenLake) as one-hot vectors for neural networks."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(obs.long().view(-1), self.n).float()


class NatureCNN(nn.Module):
    """Mnih et al. 2015 trunk: 3 convs + 512 linear; uint8 frames are scaled here, on the device."""

    def __init__(self, in_channels: int, size: int, ortho: bool) -> None:
        super().__init__()
        gain = math.sqrt(2) if ortho else 1.0
        convs = [
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.Conv2d(64, 64, 3, stride=1),
        ]
        if ortho:
            for conv in convs:
                init_layer(conv, gain)
        self.convs = nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU(), convs[2], nn.ReLU())
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, in_channels, size, size)).numel()
        self.fc = nn.Linear(flat, 512)
        if ortho:
            init_layer(self.fc, gain)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.convs(obs.float() * (1.0 / 255.0))
        return torch.relu(self.fc(x.flatten(1)))


def mlp(in_dim: int, hidden: list[int], activation: str, ortho: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        linear = nn.Linear(in_dim, width)
        if ortho:
            init_layer(linear, math.sqrt(2))
        layers += [linear, _ACTIVATIONS[activation]()]
        in_dim = width
    return nn.Sequential(*layers)


def build_trunk(obs_space: gym.Space[Any], cfg: NetworkConfig) -> tuple[nn.Module, int]:
    """Feature extractor for `obs_space` and its output width."""
    if cfg.activation not in _ACTIVATIONS:
        raise UserError(
            f"network.activation={cfg.activation} is not known; use one of {sorted(_ACTIVATIONS)}"
        )
    name = cfg.name
    if name == "auto":
        name = "nature_cnn" if is_image_space(obs_space) else "mlp"
    if name == "nature_cnn":
        if not is_image_space(obs_space):
            raise UserError(
                f"network=nature_cnn needs uint8 image observations, got {obs_space}; use network=mlp"
            )
        channels, height, _ = obs_space.shape  # type: ignore[misc]
        return NatureCNN(channels, height, cfg.ortho_init), 512
    if name != "mlp":
        raise UserError(f"network={name} cannot build a neural network; use network=mlp or auto")
    if isinstance(obs_space, gym.spaces.Discrete):
        n = int(obs_space.n)
        body = mlp(n, cfg.hidden_sizes, cfg.activation, cfg.ortho_init)
        return nn.Sequential(OneHot(n), body), cfg.hidden_sizes[-1] if cfg.hidden_sizes else n
    if not isinstance(obs_space, gym.spaces.Box):
        raise UserError(f"observation space {obs_space} is not supported by neural networks")
    in_dim = int(np.prod(obs_space.shape))
    out = cfg.hidden_sizes[-1] if cfg.hidden_sizes else in_dim
    return mlp(in_dim, cfg.hidden_sizes, cfg.activation, cfg.ortho_init), out


def _head(in_dim: int, out_dim: int, gain: float, ortho: bool) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    if ortho:
        init_layer(layer, gain)
    return layer


class ActorCritic(nn.Module):
    """pi(a|s) and V(s) with shared or separate trunks; categorical or diagonal Gaussian policy.

    Gaussian policies use a state-independent log-std parameter (as in PPO's paper and SB3).
    """

    def __init__(
        self, obs_space: gym.Space[Any], action_space: gym.Space[Any], cfg: NetworkConfig
    ) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            act_dim = int(action_space.n)  # type: ignore[attr-defined]
        elif isinstance(action_space, gym.spaces.Box):
            act_dim = int(np.prod(action_space.shape))
        else:
            raise UserError(f"action space {action_space} is not supported by actor-critic")
        self.actor_trunk, width = build_trunk(obs_space, cfg)
        if cfg.shared_trunk:
            self.critic_trunk: nn.Module = self.actor_trunk
        else:
            self.critic_trunk, _ = build_trunk(obs_space, cfg)
        self.shared = cfg.shared_trunk
        self.policy_head = _head(width, act_dim, 0.01, cfg.ortho_init)
        self.value_head = _head(width, 1, 1.0, cfg.ortho_init)
        self.log_std = None if self.discrete else nn.Parameter(torch.zeros(act_dim))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits or Gaussian mean, V(s))."""
        features = self.actor_trunk(obs)
        critic_features = features if self.shared else self.critic_trunk(obs)
        return self.policy_head(features), self.value_head(critic_features).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.critic_trunk(obs)).squeeze(-1)

    def act(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or take the mode of) the policy: returns actions, log pi(a|s), V(s)."""
        out, value = self(obs)
        if self.discrete:
            actions = out.argmax(-1) if deterministic else D.categorical_sample(out)
            return actions, D.categorical_log_prob(out, actions), value
        assert self.log_std is not None
        log_std = self.log_std.expand_as(out)
        actions = out if deterministic else D.gaussian_sample(out, log_std)
        return actions, D.gaussian_log_prob(out, log_std, actions), value

    def evaluate(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi(a|s), entropy of pi(.|s) and V(s) for a batch of taken actions."""
        out, value = self(obs)
        if self.discrete:
            return D.categorical_log_prob(out, actions), D.categorical_entropy(out), value
        assert self.log_std is not None
        log_std = self.log_std.expand_as(out)
        return D.gaussian_log_prob(out, log_std, actions), D.gaussian_entropy(log_std), value


class QNetwork(nn.Module):
    """Q(s, .) for discrete actions; dueling: Q = V + A - mean_a A (Wang et al. 2016)."""

    def __init__(self, obs_space: gym.Space[Any], n_actions: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.trunk, width = build_trunk(obs_space, cfg)
        self.dueling = cfg.dueling
        if self.dueling:
            self.value_head = nn.Linear(width, 1)
            self.advantage_head = nn.Linear(width, n_actions)
        else:
            self.q_head = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.trunk(obs)
        if not self.dueling:
            return self.q_head(features)
        advantages = self.advantage_head(features)
        return self.value_head(features) + advantages - advantages.mean(-1, keepdim=True)


def build_actor_critic(
    obs_space: gym.Space[Any], action_space: gym.Space[Any], cfg: NetworkConfig
) -> ActorCritic:
    return ActorCritic(obs_space, action_space, cfg)


def build_q_network(obs_space: gym.Space[Any], n_actions: int, cfg: NetworkConfig) -> QNetwork:
    return QNetwork(obs_space, n_actions, cfg)
