"""Trunks and heads. `network.name=auto` picks the trunk from the observation space."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltrain.config.schema import NetworkConfig
from rltrain.errors import UserError
from rltrain.networks import distributions as D

_FUNCTIONS = {"tanh": torch.tanh, "relu": torch.relu, "elu": nn.functional.elu}
CONV_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def is_image_space(space: gym.Space[Any]) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def init_layer(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    if layer.bias is not None:
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
    """Mnih et al. 2015 trunk: 3 convs + 512 linear; uint8 frames are scaled here, on the device.

    On the CPU the frames enter the convolutions in channels-last (NHWC) layout: oneDNN's
    convolutions run natively on it, which makes an update faster (docs/benchmarks.md); the weights
    stay contiguous (the flat-buffer optimizer owns them). The 1/255 scale is folded into the
    first layer's weights, conv(x / 255, W) = conv(x, W / 255), which spares an elementwise pass
    over the input batch.
    """

    def __init__(
        self, in_channels: int, size: int, ortho: bool, conv_dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.conv_dtype = conv_dtype
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
        # One pass from uint8 NCHW to float (NHWC on the CPU; GPU layouts were not measured).
        layout = torch.channels_last if obs.device.type == "cpu" else torch.contiguous_format
        # bfloat16 holds the integers 0-255 exactly, so the frames convert to it directly.
        x = obs.to(dtype=self.conv_dtype, memory_format=layout)
        if self.conv_dtype == torch.float32:
            x = self._convolve(x)  # no autocast context on the default path (acting: per step)
        else:
            with torch.autocast(obs.device.type, dtype=self.conv_dtype):
                x = self._convolve(x).float()
        return torch.relu(self.fc(x.flatten(1)))

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        first: nn.Conv2d = self.convs[0]  # type: ignore[assignment]
        x = nn.functional.conv2d(
            x, first.weight * (1.0 / 255.0), first.bias, first.stride, first.padding
        )
        for layer in list(self.convs)[1:]:
            x = layer(x)
        return x


class MLP(nn.Module):
    """Fully connected layers with one activation, evaluated as a plain loop of F.linear calls.

    Same parameters as nn.Sequential(Flatten, Linear, act, Linear, act, ...), but without a
    module call per layer: on a 64-unit network that call overhead is a third of the forward.
    """

    def __init__(self, in_dim: int, hidden: list[int], activation: str, ortho: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for width in hidden:
            linear = nn.Linear(in_dim, width)
            if ortho:
                init_layer(linear, math.sqrt(2))
            self.layers.append(linear)
            in_dim = width
        self.activation_name = activation
        self.activation = _FUNCTIONS[activation]

    def layer_parameters(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.weight, layer.bias) for layer in cast("Iterable[nn.Linear]", self.layers)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in cast("Iterable[nn.Linear]", self.layers):  # only Linear layers go in
            x = self.activation(nn.functional.linear(x, layer.weight, layer.bias))
        return x


def mlp(in_dim: int, hidden: list[int], activation: str, ortho: bool) -> MLP:
    return MLP(in_dim, hidden, activation, ortho)


def build_trunk(obs_space: gym.Space[Any], cfg: NetworkConfig) -> tuple[nn.Module, int]:
    """Feature extractor for `obs_space` and its output width (NetworkConfig has checked the
    activation and conv_dtype names)."""
    name = cfg.name
    if name == "auto":
        name = "nature_cnn" if is_image_space(obs_space) else "mlp"
    if name == "nature_cnn":
        if not is_image_space(obs_space):
            raise UserError(
                f"network=nature_cnn needs uint8 image observations, got {obs_space}; "
                "use network=mlp"
            )
        channels, height, _ = obs_space.shape  # type: ignore[misc]
        return NatureCNN(channels, height, cfg.ortho_init, CONV_DTYPES[cfg.conv_dtype]), 512
    if name != "mlp":
        raise UserError(f"network={name} cannot build a neural network; use network=mlp or auto")
    if cfg.conv_dtype != "float32":
        raise UserError(
            f"network.conv_dtype={cfg.conv_dtype} applies to the nature_cnn trunk (image "
            "observations) only; remove it"
        )
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


# log-std bounds for state-dependent heads: keeps exp(log_std) finite early in training
# (the same range SAC implementations use).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
# tanh squashing: keep tanh(u) away from +-1 so atanh and log(1 - tanh^2) stay finite
_SQUASH_EPS = 1e-6


def _check_gaussian_options(action_space: gym.Space[Any], cfg: NetworkConfig) -> None:
    """Gaussian-policy options make no sense for a categorical policy: say so before training."""
    if isinstance(action_space, gym.spaces.Box):
        if cfg.squash_actions and not (
            np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()
        ):
            raise UserError(
                f"network.squash_actions=true needs a bounded action box, got {action_space}"
            )
        return
    for key, value, default in (
        ("state_dependent_std", cfg.state_dependent_std, False),
        ("squash_actions", cfg.squash_actions, False),
        ("log_std_init", cfg.log_std_init, 0.0),
    ):
        if value != default:
            raise UserError(
                f"network.{key}={value} is a Gaussian-policy option, but the action space "
                f"{action_space} is discrete; remove it"
            )


class ActorCritic(nn.Module):
    """pi(a|s) and V(s) with shared or separate trunks; categorical or diagonal Gaussian policy.

    Gaussian policies use a state-independent log-std parameter by default (as in PPO's paper and
    SB3); `network.state_dependent_std` gives a log-std head on the actor features instead.
    With `network.squash_actions`, u ~ N(mean, std) and the action is a = c + s * tanh(u)
    (c, s: centre and half-width of the box), whose log-density is

        log pi(a|s) = log N(u; mean, std) - sum_i log(s_i * (1 - tanh(u_i)^2))

    (change of variables, Haarnoja et al. 2018, appendix C). Taken actions are stored in env
    units, so `evaluate` recovers u = atanh((a - c) / s). For a stored action the Jacobian term
    does not depend on the weights: it changes the reported log-probabilities, not the
    policy-gradient direction. The entropy returned for squashed policies is the entropy of the
    Gaussian u (the squashed one has no closed form).
    """

    action_centre: torch.Tensor  # buffers of squashed Gaussian policies
    action_half_width: torch.Tensor

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
        _check_gaussian_options(action_space, cfg)
        self.actor_trunk, width = build_trunk(obs_space, cfg)
        # A shared trunk is the actor's module, not registered a second time: it would appear
        # twice in the state dict (and in checkpoints) under two names.
        self._critic_trunk: nn.Module | None = (
            None if cfg.shared_trunk else build_trunk(obs_space, cfg)[0]
        )
        self.policy_head = _head(width, act_dim, 0.01, cfg.ortho_init)
        self.value_head = _head(width, 1, 1.0, cfg.ortho_init)
        self.log_std: nn.Parameter | None = None
        self.log_std_head: nn.Linear | None = None
        self.squash = False
        if not self.discrete:
            if cfg.state_dependent_std:
                self.log_std_head = _head(width, act_dim, 0.01, cfg.ortho_init)
                nn.init.constant_(self.log_std_head.bias, cfg.log_std_init)
            else:
                self.log_std = nn.Parameter(torch.full((act_dim,), float(cfg.log_std_init)))
            self.squash = cfg.squash_actions
            if self.squash:
                assert isinstance(action_space, gym.spaces.Box)
                low = torch.as_tensor(action_space.low, dtype=torch.float32).flatten()
                high = torch.as_tensor(action_space.high, dtype=torch.float32).flatten()
                self.register_buffer("action_centre", (high + low) / 2)
                self.register_buffer("action_half_width", (high - low) / 2)

    @property
    def critic_trunk(self) -> nn.Module:
        return self.actor_trunk if self._critic_trunk is None else self._critic_trunk

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits or Gaussian mean, V(s))."""
        features = self.actor_trunk(obs)
        critic_features = features if self._critic_trunk is None else self._critic_trunk(obs)
        return self.policy_head(features), self.value_head(critic_features).squeeze(-1)

    def _heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(logits or mean, log-std or None for categorical, V(s)) in one pass over the trunks."""
        features = self.actor_trunk(obs)
        critic_features = features if self._critic_trunk is None else self._critic_trunk(obs)
        out = self.policy_head(features)
        value = self.value_head(critic_features).squeeze(-1)
        if self.discrete:
            return out, None, value
        if self.log_std_head is not None:
            log_std = self.log_std_head(features).clamp(LOG_STD_MIN, LOG_STD_MAX)
        else:
            assert self.log_std is not None
            log_std = self.log_std.expand_as(out)
        return out, log_std, value

    def _squash_log_jacobian(self, tanh_u: torch.Tensor) -> torch.Tensor:
        """sum_i log(s_i * (1 - tanh(u_i)^2)): the log |da/du| of a = c + s * tanh(u)."""
        return (torch.log(self.action_half_width * (1.0 - tanh_u.pow(2)) + _SQUASH_EPS)).sum(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.critic_trunk(obs)).squeeze(-1)

    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The policy's parameters alone: (logits, None) or (Gaussian mean, log-std); for a
        squashed policy those of the Gaussian before tanh (TRPO's KL is the same either way)."""
        features = self.actor_trunk(obs)
        out = self.policy_head(features)
        if self.discrete:
            return out, None
        if self.log_std_head is not None:
            return out, self.log_std_head(features).clamp(LOG_STD_MIN, LOG_STD_MAX)
        assert self.log_std is not None
        return out, self.log_std.expand_as(out)

    def policy_parameters(self) -> list[nn.Parameter]:
        """The weights pi depends on (the actor trunk and heads, the log-std), not V's."""
        critic = {id(p) for p in self.value_head.parameters()}
        if self._critic_trunk is not None:
            critic |= {id(p) for p in self._critic_trunk.parameters()}
        return [p for p in self.parameters() if id(p) not in critic]

    def act(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or take the mode of) the policy: returns actions, log pi(a|s), V(s)."""
        out, log_std, value = self._heads(obs)
        if log_std is None:
            actions = out.argmax(-1) if deterministic else D.categorical_sample(out)
            return actions, D.categorical_log_prob(out, actions), value
        u = out if deterministic else D.gaussian_sample(out, log_std)
        log_prob = D.gaussian_log_prob(out, log_std, u)
        if not self.squash:
            return u, log_prob, value
        tanh_u = torch.tanh(u)
        actions = self.action_centre + self.action_half_width * tanh_u
        return actions, log_prob - self._squash_log_jacobian(tanh_u), value

    def evaluate(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi(a|s), entropy of pi(.|s) and V(s) for a batch of taken actions."""
        out, log_std, value = self._heads(obs)
        if log_std is None:
            return D.categorical_log_prob(out, actions), D.categorical_entropy(out), value
        entropy = D.gaussian_entropy(log_std)
        if not self.squash:
            return D.gaussian_log_prob(out, log_std, actions), entropy, value
        tanh_u = ((actions - self.action_centre) / self.action_half_width).clamp(
            -1.0 + _SQUASH_EPS, 1.0 - _SQUASH_EPS
        )
        u = torch.atanh(tanh_u)
        log_prob = D.gaussian_log_prob(out, log_std, u) - self._squash_log_jacobian(tanh_u)
        return log_prob, entropy, value


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
