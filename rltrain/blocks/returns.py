"""Pure return and advantage estimators.

All functions take time-major tensors ``[T, N]`` (T steps of N envs; any trailing shape works,
``[T]`` included) and return new tensors; inputs are never modified. They loop over time only
and are vectorized over the envs.

Conventions shared by every function:

* ``next_values[t]`` is V(s_{t+1}) of the TRUE successor of step t. On a step where an episode
  ended and the vector env auto-reset, that is V of the final observation, not of the reset
  observation.
* ``terminated[t]`` / ``truncated[t]`` are bool or float tensors and are kept apart:
  ``done_t = terminated_t or truncated_t``. A termination does not bootstrap (the successor is
  absorbing, value 0); a truncation (time limit) bootstraps from ``next_values``
  (Pardo et al. 2018, "Time Limits in Reinforcement Learning").
* No recursion ever crosses an episode end: quantities of step t never use rewards or values
  of the next episode.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["discounted_returns", "episode_returns", "gae", "nstep_returns", "td_errors"]


def _as_float(x: Tensor, like: Tensor) -> Tensor:
    """Bool/int/float flags -> the float dtype and device of ``like`` (a new tensor)."""
    return x.to(dtype=like.dtype, device=like.device)


def _done(terminated: Tensor, truncated: Tensor, like: Tensor) -> Tensor:
    """``done = terminated | truncated`` as a 0/1 float tensor."""
    return ((_as_float(terminated, like) + _as_float(truncated, like)) > 0).to(like.dtype)


def td_errors(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    gamma: float,
) -> Tensor:
    """One-step TD errors.

    delta_t = r_t + gamma * (1 - term_t) * V(s_{t+1}) - V(s_t)

    A truncated step still bootstraps from ``next_values[t]`` (the final observation's value).
    """
    not_term = 1.0 - _as_float(terminated, rewards)
    return rewards + gamma * not_term * next_values - values


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, arXiv:1506.02438).

    delta_t = r_t + gamma * (1 - term_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},      A_T = 0 (beyond the rollout)
    R_t     = A_t + V(s_t)                                            (the value target)

    A truncation bootstraps inside delta_t (through ``next_values``) but, like a termination,
    stops the recursion, so an advantage never mixes two episodes. With lambda = 0, A = delta;
    with lambda = 1, A_t = G_t - V(s_t) with G from :func:`discounted_returns`.

    Returns:
        ``(advantages, returns)``, both shaped like ``rewards``.
    """
    deltas = td_errors(rewards, values, next_values, terminated, gamma)
    carry = gamma * gae_lambda * (1.0 - _done(terminated, truncated, rewards))
    if rewards.shape[0] == 0:
        return torch.zeros_like(rewards), torch.zeros_like(rewards)
    out: list[Tensor] = []
    next_adv = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        next_adv = deltas[t] + carry[t] * next_adv
        out.append(next_adv)
    advantages = torch.stack(out[::-1])
    return advantages, advantages + values


def discounted_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
) -> Tensor:
    """Monte-Carlo discounted returns inside a rollout, bootstrapped where the data stops.

    G_t = r_t + gamma * [ (1 - term_t) * V(s_{t+1})   if done_t or t = T - 1
                          G_{t+1}                      otherwise ]

    So a termination contributes 0 after it, a truncation and the last row of the rollout
    bootstrap from ``next_values``, and the sum never runs into the next episode.
    """
    not_term = 1.0 - _as_float(terminated, rewards)
    done = _done(terminated, truncated, rewards)
    if rewards.shape[0] == 0:
        return torch.zeros_like(rewards)
    bootstrap = not_term * next_values
    out: list[Tensor] = []
    next_ret = bootstrap[-1]  # the rollout end bootstraps like a truncation
    for t in range(rewards.shape[0] - 1, -1, -1):
        next_ret = rewards[t] + gamma * torch.where(done[t] > 0, bootstrap[t], next_ret)
        out.append(next_ret)
    return torch.stack(out[::-1])


def episode_returns(rewards: Tensor, gamma: float) -> Tensor:
    """Discounted reward-to-go of one complete episode ``[T]`` (REINFORCE, Williams 1992).

    G_t = sum_{k >= 0} gamma^k r_{t+k} = r_t + gamma * G_{t+1},     G_T = 0
    """
    if rewards.shape[0] == 0:
        return torch.zeros_like(rewards)
    out: list[Tensor] = []
    next_ret = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        next_ret = rewards[t] + gamma * next_ret
        out.append(next_ret)
    return torch.stack(out[::-1])


def _shift(x: Tensor, k: int, fill: float | bool) -> Tensor:
    """``y[t] = x[t + k]`` where ``t + k < T``, else ``fill`` (a new tensor unless k = 0)."""
    if k == 0:
        return x
    if k >= x.shape[0]:
        return torch.full_like(x, fill)
    return torch.cat([x[k:], torch.full_like(x[:k], fill)])


def nstep_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    n: int,
) -> Tensor:
    """n-step bootstrapped returns (Sutton & Barto 2018, sec. 7.1; as in Rainbow's n-step DQN).

    G_t^(n) = sum_{k<m} gamma^k r_{t+k} + gamma^m * (1 - term_{t+m-1}) * V(s_{t+m})

    with m = min(n, steps to the episode end inclusive, steps to the rollout end) and
    V(s_{t+m}) = ``next_values[t+m-1]`` (the true successor of the window's last step). n = 1 is
    the TD target r_t + gamma * (1 - term_t) * V(s_{t+1}). The loop runs over the n offsets
    (n <= T is all that matters), vectorized over time and envs.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    num_steps = rewards.shape[0]
    not_term = 1.0 - _as_float(terminated, rewards)
    done = _done(terminated, truncated, rewards) > 0
    # row index t, broadcast over trailing env dims, to know where the rollout ends
    time = torch.arange(num_steps, device=rewards.device).view(-1, *([1] * (rewards.dim() - 1)))
    returns = torch.zeros_like(rewards)
    alive = torch.ones_like(done)  # window of row t still open before offset k
    for k in range(min(n, num_steps)):
        r_k = _shift(rewards, k, 0.0)
        boot_k = _shift(not_term * next_values, k, 0.0)
        done_k = _shift(done, k, True)
        # the window closes at offset k on an episode end, at the n-th step or at the rollout end
        ends = done_k | (k == n - 1) | (time + k >= num_steps - 1)
        returns = returns + torch.where(alive, (gamma**k) * r_k, torch.zeros_like(r_k))
        closes = alive & ends
        returns = returns + torch.where(closes, (gamma ** (k + 1)) * boot_k, torch.zeros_like(r_k))
        alive = alive & ~ends
    return returns
