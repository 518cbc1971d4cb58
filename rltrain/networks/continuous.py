"""Actors and critics for continuous actions (SAC, TD3, DDPG), on vector observations.

Actions inside these networks live in the unit box [-1, 1]^d; the algorithm scales them to the
env's box (`rltrain.algos.off_policy.ActionScale`), so noise scales, the entropy target -|A| and
the critics' inputs do not depend on the env's units.

`Critics` evaluates an ensemble of n independent Q-networks (n = 2 for twin critics, 1 for DDPG)
with one batched matrix product per layer instead of n separate MLPs: the same functions, with a
single kernel call per layer for both critics (tests tie it to n separate `nn.Linear` stacks).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from rltrain.config.schema import NetworkConfig
from rltrain.networks.builders import _FUNCTIONS, LOG_STD_MAX, LOG_STD_MIN, init_layer, mlp


class Critics(nn.Module):
    """n critics Q_i(s, a), i < n, each an MLP over the concatenation [s, a].

    Layer l of all critics is one weight [n, in, out] and one bias [n, 1, out]:
    h_l = act(h_{l-1} @ W_l + b_l), evaluated for the n critics by one `torch.baddbmm`.
    Initialisation as `nn.Linear` (uniform in +-1/sqrt(in)), or orthogonal with gain sqrt(2)
    (1 for the output layer) when network.ortho_init is set.
    """

    def __init__(self, obs_dim: int, act_dim: int, n: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.n = n
        widths = [obs_dim + act_dim, *cfg.hidden_sizes, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            weight = torch.empty(n, fan_in, fan_out)
            bias = torch.empty(n, 1, fan_out)
            last = layer == len(widths) - 2
            for i in range(n):
                if cfg.ortho_init:
                    # orthogonal_ on the [out, in] matrix, as init_layer does for nn.Linear
                    w = torch.empty(fan_out, fan_in)
                    nn.init.orthogonal_(w, 1.0 if last else math.sqrt(2))
                    weight[i] = w.T
                    bias[i].zero_()
                else:
                    bound = 1.0 / math.sqrt(fan_in)
                    weight[i].uniform_(-bound, bound)
                    bias[i].uniform_(-bound, bound)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))
        self.activation = _FUNCTIONS[cfg.activation]

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """[n, B]: Q_i(s_b, a_b) of every critic for every pair."""
        x = torch.cat([obs.flatten(1), actions], dim=-1).expand(self.n, -1, -1)
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(bias, x, weight)
            if layer < last:
                x = self.activation(x)
        return x.squeeze(-1)


class DeterministicActor(nn.Module):
    """mu(s) = tanh(W h(s) + b) in [-1, 1]^d (Lillicrap et al. 2016; Fujimoto et al. 2018)."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, cfg.hidden_sizes, cfg.activation, cfg.ortho_init)
        width = cfg.hidden_sizes[-1] if cfg.hidden_sizes else obs_dim
        self.head = nn.Linear(width, act_dim)
        if cfg.ortho_init:
            init_layer(self.head, 0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.trunk(obs)))


class GaussianActor(nn.Module):
    """The pre-squash Gaussian of SAC's policy: (mean(s), log_std(s)), log_std clamped to
    [LOG_STD_MIN, LOG_STD_MAX]; the action is a = tanh(u), u ~ N(mean, std) (Haarnoja et al.
    2018, appendix C). Sampling and the log-density are in `rltrain.algos.sac`."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, cfg.hidden_sizes, cfg.activation, cfg.ortho_init)
        width = cfg.hidden_sizes[-1] if cfg.hidden_sizes else obs_dim
        self.mean_head = nn.Linear(width, act_dim)
        self.log_std_head = nn.Linear(width, act_dim)
        if cfg.ortho_init:
            init_layer(self.mean_head, 0.01)
            init_layer(self.log_std_head, 0.01)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(obs)
        log_std = self.log_std_head(features).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.mean_head(features), log_std
