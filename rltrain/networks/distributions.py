"""Action distributions as plain functions on tensors.

torch.distributions validates its arguments and builds objects on every call; on a 64-unit MLP that
overhead outweighs the network itself, so the hot path uses these formulas directly.
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


def categorical_sample(logits: torch.Tensor) -> torch.Tensor:
    """Gumbel-max sampling: argmax_a (logits_a + g_a), g_a = -log(-log u_a), u ~ U(0, 1)."""
    return categorical_sample_from_uniform(logits, torch.rand_like(logits))


def categorical_sample_from_uniform(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """`categorical_sample` with the uniforms u (the logits' shape) drawn by the caller: a
    population draws each seed's from that seed's own generator. u is clamped in place."""
    u.clamp_(1e-12, 1.0 - 1e-7)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) = logits_a - logsumexp(logits)."""
    return log_prob_from_log_softmax(torch.log_softmax(logits, dim=-1), actions)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H = -sum_a pi_a log pi_a."""
    return entropy_from_log_softmax(torch.log_softmax(logits, dim=-1))


def log_prob_from_log_softmax(log_softmax: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a|s), picked from log pi(.|s) (for callers that keep the log-softmax)."""
    return log_softmax.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def entropy_from_log_softmax(log_softmax: torch.Tensor) -> torch.Tensor:
    """H = -sum_a pi_a log pi_a from log pi(.|s)."""
    return -(log_softmax.exp() * log_softmax).sum(-1)


def gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """a = mean + exp(log_std) * eps, eps ~ N(0, I)."""
    return mean + log_std.exp() * torch.randn_like(mean)


def gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """log N(a; mean, diag(std^2)) = sum_i [-(a_i - m_i)^2 / (2 s_i^2) - log s_i - log(2 pi)/2]."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """H = sum_i [log s_i + (1 + log(2 pi)) / 2]."""
    return (log_std + 0.5 * (1.0 + _LOG_2PI)).sum(-1)


def tanh_log_det_jacobian(u: torch.Tensor) -> torch.Tensor:
    """sum_i log(1 - tanh(u_i)^2) = sum_i 2 (log 2 - u_i - softplus(-2 u_i)), the log |da/du| of
    a = tanh(u), in the form that stays finite where tanh(u) rounds to +-1."""
    return (2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))).sum(-1)


def squashed_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """log pi(a|s) of a = tanh(u), u ~ N(mean, diag(std^2)) (change of variables, Haarnoja et
    al. 2018, appendix C, eq. 21): log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2)."""
    return gaussian_log_prob(mean, log_std, u) - tanh_log_det_jacobian(u)
