"""Q, V and A = Q - V as every family estimates them, and how they are logged, written once.

What each family calls Q, V and A (docs/metrics.md has the same table):

- tabular, value / policy iteration, DQN: Q(s, .) of the table or network; V(s) = max_a Q(s, a),
  the value of the greedy policy; A(s, a) = Q(s, a) - V(s) <= 0 (`greedy_values`);
- actor-critics (PPO, A2C, A3C, TRPO, REINFORCE with a baseline): V(s_t) of the critic when
  acting, A_t the GAE advantage (REINFORCE: G_t - V(s_t)), Q(s_t, a_t) estimated by the return
  target A_t + V(s_t) (REINFORCE: the Monte-Carlo return G_t);
- SAC: Q = min_i Q_i(s, a) of the replayed action, V = min_i Q_i(s, a~) - alpha log pi(a~|s)
  with one action sampled from the policy, A = Q - V;
- TD3 / DDPG: Q = Q1(s, a) of the replayed action, V = Q1(s, mu(s)), A = Q - V;
- GRPO: Q = R of the completion, V = the group's mean reward (its baseline), A its advantage.

`record_histograms` logs whichever of the three a family has, and `value_chart_layout` is the
TensorBoard Custom Scalars layout that puts their means on one chart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rltrain import tags
from rltrain.logging import Recorder

VALUE_CHART_CATEGORY = "values"
VALUE_CHART_TITLE = "Q, V and A (means)"


def greedy_values(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, A) of action values q [..., A]: V(s) = max_a Q(s, a), A(s, a) = Q(s, a) - V(s) <= 0.

    V is [..., 1], so that A broadcasts; the greedy action has A = 0.
    """
    v = q.max(dim=-1, keepdim=True).values
    return v, q - v


def record_histograms(
    rec: Recorder,
    *,
    q: torch.Tensor | np.ndarray | None = None,
    v: torch.Tensor | np.ndarray | None = None,
    advantage: torch.Tensor | np.ndarray | None = None,
) -> None:
    """values/q, values/v and values/advantage histograms of the estimates a family has."""
    for tag, values in ((tags.Q_HISTOGRAM, q), (tags.V_HISTOGRAM, v),
                        (tags.ADVANTAGE_HISTOGRAM, advantage)):  # fmt: skip
        if values is not None:
            rec.histogram(tag, values.reshape(-1))


def value_chart_layout(logged: tuple[str, ...]) -> dict[str, Any]:
    """Custom Scalars layout: one Multiline chart in category "values" of the mean Q, V and A
    scalars among `logged` (in that order); {} when none of them is logged."""
    lines = [tag for tag in tags.VALUE_MEAN_TAGS if tag in logged]
    if not lines:
        return {}
    return {VALUE_CHART_CATEGORY: {VALUE_CHART_TITLE: ["Multiline", lines]}}
