"""The exact KL-regularized optimum of a token MDP, and a policy's exact objective, on its tree.

The tree holds every prefix (state) of every prompt up to the last decision: node n has, for each
action a, either a child node `child[n, a] >= 0` or an end (EOS or the length limit) with the
task reward `end_reward[n, a]`. Nodes are ordered parents before children (by depth), so one
backward sweep computes values and one forward sweep visit probabilities. The objective is

    J(pi) = E_x E_{y ~ pi(.|x)} [R(x, y)] - beta KL(pi(.|x) || pi_ref(.|x)),

maximised by pi*(y|x) proportional to pi_ref(y|x) exp(R(x, y) / beta) (Ziegler et al. 2019;
Rafailov et al. 2023, eq. 4).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Tree(NamedTuple):
    child: Tensor  # [N, A] int64, -1 where the action ends the completion
    end_reward: Tensor  # [N, A] float, R(x, y) where the action ends it, 0 elsewhere
    depth: Tensor  # [N] int64, tokens generated before the node
    roots: Tensor  # [P] node index of each prompt's empty completion


class SoftOptimum(NamedTuple):
    q: Tensor  # [N, A] Q*(s, a)
    v: Tensor  # [N] V*(s)
    log_pi: Tensor  # [N, A] log pi*(a|s)
    objective: float  # J* = mean over prompts of V*(root)


def soft_optimum(tree: Tree, ref_log_probs: Tensor, beta: float) -> SoftOptimum:
    """Backward pass over the tree, deepest nodes first:

        Q*(s, a) = R(s, a) + V*(s')            (R only where a ends the completion, V* = 0 past it)
        V*(s)    = beta log sum_a pi_ref(a|s) exp(Q*(s, a) / beta)
        pi*(a|s) = pi_ref(a|s) exp((Q*(s, a) - V*(s)) / beta)

    The per-token KL rewards are folded into the soft maximum. With beta = 0 the soft maximum is
    the hard one and pi* is uniform over the best actions the reference can take.
    """
    ref = ref_log_probs.double()
    q = torch.zeros_like(ref)
    v = torch.zeros(ref.shape[0], dtype=ref.dtype, device=ref.device)
    has_child = tree.child >= 0
    for d in range(int(tree.depth.max()), -1, -1):
        nodes = torch.nonzero(tree.depth == d).flatten()
        child = tree.child[nodes]
        future = torch.where(has_child[nodes], v[child.clamp(min=0)], 0.0)
        q[nodes] = tree.end_reward[nodes].double() + future
        v[nodes] = soft_max(q[nodes], ref[nodes], beta)
    if beta > 0:
        log_pi = ref + (q - v[:, None]) / beta
    else:
        best = (q >= q.max(dim=1, keepdim=True).values - 1e-12) & torch.isfinite(ref)
        log_pi = torch.where(best, 0.0, -torch.inf) - best.double().sum(1, keepdim=True).log()
    return SoftOptimum(q, v, log_pi, float(v[tree.roots].mean()))


def soft_max(q: Tensor, ref_log_probs: Tensor, beta: float) -> Tensor:
    """beta log sum_a pi_ref(a|s) exp(Q(s, a) / beta) per row; max over pi_ref's support at 0."""
    if beta > 0:
        return beta * torch.logsumexp(ref_log_probs + q / beta, dim=1)
    return torch.where(torch.isfinite(ref_log_probs), q, -torch.inf).max(dim=1).values


class PolicyReport(NamedTuple):
    reward: float  # E[R]
    kl_to_reference: float  # E_x KL(pi(.|x) || pi_ref(.|x)) over whole completions
    kl_to_optimal: float  # E_x KL(pi(.|x) || pi*(.|x))
    objective: float  # E[R] - beta KL to the reference
    visits: Tensor  # [N] probability under pi that a completion passes through node n


def visit_probabilities(tree: Tree, log_pi: Tensor) -> Tensor:
    """p(root) = 1 / #prompts, p(child(s, a)) = p(s) pi(a|s): forward pass by depth."""
    pi = log_pi.double().exp()
    p = torch.zeros(log_pi.shape[0], dtype=torch.float64, device=log_pi.device)
    p[tree.roots] = 1.0 / len(tree.roots)
    for d in range(int(tree.depth.max()) + 1):
        nodes = torch.nonzero(tree.depth == d).flatten()
        inner = tree.child[nodes] >= 0
        flow = (p[nodes, None] * pi[nodes])[inner]
        p[tree.child[nodes][inner]] = flow
    return p


def policy_report(
    tree: Tree, log_pi: Tensor, ref_log_probs: Tensor, optimal_log_pi: Tensor, beta: float
) -> PolicyReport:
    """Exact E[R] and sequence KLs of pi on the tree. A sequence KL is the sum over the states a
    completion passes of the per-token KL:  KL(pi || q) = sum_s p_pi(s) sum_a pi(a|s) log(pi/q)."""
    p = visit_probabilities(tree, log_pi)
    lp = log_pi.double()
    pi = lp.exp()

    def kl(other: Tensor) -> float:
        per_state = torch.where(pi > 0, pi * (lp - other.double()), 0.0).sum(1)
        return float((p * per_state).sum())

    reward = float((p[:, None] * pi * tree.end_reward.double()).sum())
    kl_ref = kl(ref_log_probs)
    return PolicyReport(reward, kl_ref, kl(optimal_log_pi), reward - beta * kl_ref, p)
