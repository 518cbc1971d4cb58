"""Schedules of the step budget: how far training is, and values that move with it."""

from __future__ import annotations


def budget_used(step: int, total_steps: int) -> float:
    """p = min(1, step / total_steps): the fraction of the step budget used, in [0, 1]."""
    return min(1.0, step / max(1, total_steps))


def linear(start: float, end: float, progress: float) -> float:
    """start + min(1, p) * (end - start): a straight line over the budget, then constant."""
    return start + min(1.0, progress) * (end - start)


def epsilon_at(progress: float, start: float, end: float, fraction: float, schedule: str) -> float:
    """Exploration rate after `progress` (in [0, 1]) of the step budget.

    With p = min(1, progress / fraction):
    linear: ``eps = start + p * (end - start)``; exponential: ``eps = start * (end / start)^p``.
    """
    p = min(1.0, progress / fraction)
    if schedule == "exponential":
        return float(start * (end / start) ** p)
    return start + p * (end - start)
