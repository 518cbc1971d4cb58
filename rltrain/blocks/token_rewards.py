"""Per-token math of RL on completions: the KL-shaped reward, group advantages, the k3 estimator.

Completions are padded to a common length L; `mask[b, t]` is 1 on the tokens a completion has.
"""

from __future__ import annotations

import torch
from torch import Tensor


def per_token_kl_reward(
    log_probs: Tensor, ref_log_probs: Tensor, reward: Tensor, mask: Tensor, beta: float
) -> Tensor:
    """r_t = -beta (log pi(a_t|s_t) - log pi_ref(a_t|s_t)) + R [t = last token]  (Ziegler et al.
    2019), 0 on padding. [B, L] log-probs and mask, [B] sequence rewards -> [B, L]."""
    shaped = -beta * (log_probs - ref_log_probs) * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    return shaped.scatter_add(1, last[:, None], (reward * (mask.sum(1) > 0))[:, None].to(shaped))


def last_token(mask: Tensor) -> Tensor:
    """[B, L] mask -> [B, L] float, 1 at each completion's last token (where it terminates)."""
    last = (mask.sum(1).long() - 1).clamp(min=0)
    return torch.zeros_like(mask, dtype=torch.float32).scatter_(1, last[:, None], 1.0) * (
        mask.sum(1, keepdim=True) > 0
    )


def group_advantages(rewards: Tensor, group_size: int, leave_one_out: bool = False) -> Tensor:
    """GRPO (Shao et al. 2024): A_i = (R_i - mean_g R) / (std_g R + 1e-4) within each group of
    `group_size` consecutive completions of one prompt (std with Bessel's correction).
    RLOO (Ahmadian et al. 2024): A_i = R_i - mean_{j != i} R_j, not scaled."""
    grouped = rewards.view(-1, group_size)
    if leave_one_out:
        others = (grouped.sum(1, keepdim=True) - grouped) / (group_size - 1)
        return (grouped - others).flatten()
    mean = grouped.mean(1, keepdim=True)
    std = grouped.std(1, keepdim=True) if group_size > 1 else torch.ones_like(mean)
    return ((grouped - mean) / (std + 1e-4)).flatten()


def k3_kl(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """Unbiased, non-negative estimate of KL(pi || pi_ref) per sampled token (Schulman 2020):
    k3 = pi_ref/pi - log(pi_ref/pi) - 1, with tokens drawn from pi."""
    log_ratio = ref_log_probs - log_probs
    return log_ratio.exp() - log_ratio - 1.0


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over the tokens that exist: sum(values * mask) / sum(mask)."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Reward-model loss on preference pairs (Bradley & Terry 1952; Ouyang et al. 2022):
    -log sigmoid(r_chosen - r_rejected) = softplus(r_rejected - r_chosen), averaged over pairs."""
    return torch.nn.functional.softplus(rejected - chosen).mean()
