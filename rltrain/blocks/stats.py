"""Small statistics shared by the algorithms' diagnostics."""

from __future__ import annotations

import torch


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Var[target - predicted] / Var[target]: 1 is perfect, 0 is no better than the mean.

    Returns 0 when the targets have no variance (nothing to explain).
    """
    var_target = target.var()
    ratio = (target - predicted).var() / var_target.clamp_min(1e-12)
    return torch.where(var_target > 1e-12, 1.0 - ratio, torch.zeros_like(ratio))


def standardize(values: torch.Tensor) -> torch.Tensor:
    """(x - mean(x)) / (std(x) + 1e-8): advantages (or returns) on a common scale per batch;
    over the last axis, so a population's [K, batch] gets each seed's own mean and std."""
    if values.dim() == 1:
        return (values - values.mean()) / (values.std() + 1e-8)
    return (values - values.mean(-1, keepdim=True)) / (values.std(-1, keepdim=True) + 1e-8)
