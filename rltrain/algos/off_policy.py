"""What the replay-based learners share: target networks and the overestimation measure.

- `update_target`: theta_target <- tau * theta + (1 - tau) * theta_target (a hard copy at tau 1);
- `QBiasTracker`: `values/q_bias`, the predicted Q(s_t, a_t) minus the discounted return that
  actually followed (van Hasselt et al. 2016, sec. 3 and fig. 3), averaged over the transitions of
  the episodes that ended in a log window. Q(s_t, a_t) is taken when acting (the forward pass is
  needed anyway) and kept per env, beside the rewards, until the episode ends. A time-limit
  truncation bootstraps the tail with the learner's own value of the final state; that term is
  discounted by gamma^(T-t), so it shrinks the measured bias only near the cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta_target <- tau * theta_online + (1 - tau) * theta_target (tau = 1: a hard copy)."""
    target_params: list[torch.Tensor] = list(target.parameters())
    online_params: list[torch.Tensor] = list(online.parameters())
    if tau >= 1.0:
        torch._foreach_copy_(target_params, online_params)
    else:
        torch._foreach_lerp_(target_params, online_params, tau)
    for t_buf, o_buf in zip(target.buffers(), online.buffers(), strict=True):
        t_buf.copy_(o_buf)


def returns_to_go(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """G_t = sum_{k=t}^{T-1} gamma^(k-t) r_k + gamma^(T-t) * bootstrap, for t = 0..T-1.

    Vectorized per chunk: inside a chunk G_i = (sum_{j>=i} gamma^j r_j) / gamma^i + carry terms;
    chunks are short enough that gamma^len stays far above float64 underflow.
    """
    r = np.asarray(rewards, dtype=np.float64)
    out = np.empty_like(r)
    chunk = len(r) if gamma >= 1.0 else max(1, int(-150.0 / math.log10(gamma)))
    carry = float(bootstrap)  # G at the start of the chunk after the current one
    end = len(r)
    while end > 0:
        start = max(0, end - chunk)
        seg = r[start:end]
        powers = gamma ** np.arange(len(seg), dtype=np.float64)
        tail = np.cumsum((powers * seg)[::-1])[::-1]  # sum_{j>=i} gamma^j r_j
        out[start:end] = tail / powers + gamma ** (len(seg) - np.arange(len(seg))) * carry
        carry = float(out[start])
        end = start
    return out


def q_bias_sum(
    q_pred: np.ndarray, rewards: np.ndarray, gamma: float, bootstrap: float = 0.0
) -> tuple[float, int]:
    """Overestimation of one finished episode:

    (sum over steps t with a prediction (finite q_pred) of Q(s_t, a_t) - G_t, number of such
    steps), G from :func:`returns_to_go`. Sums, so a log window averages over transitions.
    """
    known = np.isfinite(q_pred)
    if not known.any():
        return 0.0, 0
    returns = returns_to_go(rewards, gamma, bootstrap)
    return float((q_pred[known] - returns[known]).sum()), int(known.sum())


class QBiasTracker:
    """The episodes in flight of N envs ([t, env] records of Q(s_t, a_t), NaN where no prediction
    was made, and of the training reward; grown by doubling) and the q_bias sums of a log window."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self._index = np.arange(num_envs)
        self.q = np.full((1024, num_envs), np.nan)
        self.r = np.zeros((1024, num_envs))
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.bias_sum, self.bias_count = 0.0, 0  # over transitions since the last `pop`

    def _grow(self, longest: int) -> None:
        while longest >= len(self.q):
            self.q = np.concatenate([self.q, np.full_like(self.q, np.nan)])
            self.r = np.concatenate([self.r, np.zeros_like(self.r)])

    def step(
        self,
        q_taken: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_value: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        """Record one step of every env; close the episodes that ended. `final_value(rows)` gives
        the learner's value of the final states of the envs `rows` (time-limit cuts only)."""
        self._grow(int(self.lengths.max()))
        self.q[self.lengths, self._index] = q_taken
        self.r[self.lengths, self._index] = reward
        self.lengths += 1
        done = terminated | truncated
        if not done.any():
            return
        ended = np.flatnonzero(done)
        # a time limit is not the end of the MDP: bootstrap the tail with the value of s_T
        boot = np.zeros(len(self._index))
        cut = ended[truncated[ended] & ~terminated[ended]]
        # (an episode with no prediction at all, e.g. during a warm-up, has no q_bias to give)
        predicted = np.isfinite(self.q[: self.lengths.max()]).any(axis=0)
        cut = cut[predicted[cut]]
        if cut.size:
            boot[cut] = final_value(cut)
        for e in ended:  # only the few envs whose episode ended this step
            length = int(self.lengths[e])
            total, count = q_bias_sum(self.q[:length, e], self.r[:length, e], self.gamma, boot[e])
            self.bias_sum += total
            self.bias_count += count
        self.lengths[ended] = 0

    def pop(self) -> float | None:
        """Mean q_bias over the transitions of the episodes that ended since the last call."""
        if not self.bias_count:
            return None
        mean = self.bias_sum / self.bias_count
        self.bias_sum, self.bias_count = 0.0, 0
        return mean

    def state_dict(self) -> dict[str, Any]:
        longest = int(self.lengths.max())
        return {
            "q": torch.from_numpy(self.q[:longest].copy()),
            "r": torch.from_numpy(self.r[:longest].copy()),
            "len": torch.from_numpy(self.lengths.copy()),
            "bias_sum": self.bias_sum,
            "bias_count": self.bias_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        longest = len(state["q"])
        self._grow(longest)
        self.q[:longest] = state["q"].numpy()
        self.r[:longest] = state["r"].numpy()
        self.lengths[:] = state["len"].numpy()
        self.bias_sum = float(state["bias_sum"])
        self.bias_count = int(state["bias_count"])
