"""Token-level RL math against hand-computed values, and the exact optimum against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from rltrain.blocks.kl_optimum import Tree, policy_report, soft_optimum
from rltrain.blocks.returns import gae
from rltrain.blocks.token_rewards import (
    group_advantages,
    k3_kl,
    last_token,
    masked_mean,
    per_token_kl_reward,
)


def test_per_token_kl_reward_by_hand() -> None:
    log_pi = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.3, 0.0]])
    log_ref = torch.tensor([[-1.0, -1.0, -1.0], [-0.2, -0.2, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    r = per_token_kl_reward(log_pi, log_ref, torch.tensor([2.0, -1.0]), mask, beta=0.5)
    # row 0: -0.5 * (0.5, 0, -1) + R=2 at t=2; row 1: -0.5 * (0.1, -0.1) + R=-1 at t=1, pad 0
    expected = torch.tensor([[-0.25, 0.0, 0.5 + 2.0], [-0.05, 0.05 - 1.0, 0.0]])
    torch.testing.assert_close(r, expected)
    torch.testing.assert_close(last_token(mask), torch.tensor([[0.0, 0, 1], [0, 1, 0]]))


def test_gae_over_a_completion_by_hand() -> None:
    """One completion of two tokens padded to three: gamma = 1, lambda = 0.5,
    r = (0.1, 1.0), V = (0.5, 0.8), terminated at t = 1.
    delta_1 = 1.0 - 0.8 = 0.2; delta_0 = 0.1 + 0.8 - 0.5 = 0.4; A_0 = 0.4 + 0.5 * 0.2 = 0.5."""
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    rewards = torch.tensor([[0.1, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.8, 7.0]]) * mask  # padding's value must not leak
    next_values = torch.cat([values[:, 1:], torch.zeros(1, 1)], 1)
    ends = last_token(mask)
    adv, ret = gae(rewards.T, values.T, next_values.T, ends.T, torch.zeros_like(ends).T, 1.0, 0.5)
    torch.testing.assert_close(adv.T[0, :2], torch.tensor([0.5, 0.2]))
    torch.testing.assert_close(ret.T[0, :2], torch.tensor([1.0, 1.0]))


def test_group_normalised_and_leave_one_out_advantages_by_hand() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    a = group_advantages(rewards, group_size=4)
    # group 1: mean 0.5, sample std sqrt(1/3); group 2: no spread -> 0
    s = math.sqrt(1 / 3) + 1e-4
    torch.testing.assert_close(a, torch.tensor([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, 0, 0, 0]))
    loo = group_advantages(torch.tensor([1.0, 0.0, 2.0]), group_size=3, leave_one_out=True)
    torch.testing.assert_close(loo, torch.tensor([1 - 1.0, 0 - 1.5, 2 - 0.5]))


def test_k3_estimator_by_hand_and_unbiased() -> None:
    log_pi, log_ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    # ratio pi_ref / pi = 0.5: 0.5 - log 0.5 - 1
    torch.testing.assert_close(k3_kl(log_pi, log_ref), torch.tensor([0.5 + math.log(2) - 1]))
    # its expectation under pi is KL(pi || pi_ref)
    pi, ref = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.3, 0.3, 0.4])
    expected = float((pi * (pi / ref).log()).sum())
    assert float((pi * k3_kl(pi.log(), ref.log())).sum()) == pytest.approx(expected, rel=1e-6)
    assert float(masked_mean(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1.0, 1.0, 0.0]))) == 2


def tiny_tree(ref_fn, reward_fn, actions: int, length: int) -> tuple[Tree, torch.Tensor]:
    """One prompt, digits 0..actions-2, EOS = actions-1, completions up to `length` tokens."""
    eos, prefixes = actions - 1, [()]
    nodes: list[tuple[int, ...]] = []
    for _ in range(length):
        nodes += prefixes
        prefixes = [(*p, a) for p in prefixes for a in range(eos)]
    index = {p: i for i, p in enumerate(nodes)}
    child, end = [], []
    for p in nodes:
        child.append([-1 if a == eos or len(p) + 1 == length else index[(*p, a)]
                      for a in range(actions)])  # fmt: skip
        end.append([reward_fn(p if a == eos else (*p, a)) if child[-1][a] < 0 else 0.0
                    for a in range(actions)])  # fmt: skip
    ref = torch.stack([ref_fn(p) for p in nodes])
    tree = Tree(torch.tensor(child), torch.tensor(end, dtype=torch.float64),
                torch.tensor([len(p) for p in nodes]), torch.tensor([0]))  # fmt: skip
    return tree, ref


@pytest.mark.parametrize("beta", [0.05, 0.3, 2.0])
def test_soft_optimum_matches_brute_force_enumeration(beta: float) -> None:
    """Every completion y of a 3-token vocabulary (2 digits + EOS), up to 3 tokens:
    J* = beta log sum_y pi_ref(y) exp(R(y) / beta), pi*(y) = pi_ref(y) exp(R(y)/beta) / Z."""
    gen = torch.Generator().manual_seed(0)
    table: dict[tuple[int, ...], torch.Tensor] = {}

    def ref_fn(prefix: tuple[int, ...]) -> torch.Tensor:
        if prefix not in table:
            table[prefix] = torch.randn(3, generator=gen, dtype=torch.float64).log_softmax(0)
        return table[prefix]

    def reward_fn(y: tuple[int, ...]) -> float:
        return float(sum(y) == 2) - 0.1 * len(y)

    tree, ref = tiny_tree(ref_fn, reward_fn, actions=3, length=3)
    opt = soft_optimum(tree, ref, beta)

    completions: dict[tuple[int, ...], float] = {}  # y -> log pi_ref(y), including its EOS
    for n in range(1, 4):
        for seq in itertools.product(range(3), repeat=n):
            if 2 in seq[:-1] or (n < 3 and seq[-1] != 2):
                continue  # EOS only at the end; shorter than 3 must end with EOS
            logp = sum(float(ref_fn(seq[:i])[a]) for i, a in enumerate(seq))
            completions[tuple(a for a in seq if a != 2)] = logp
    logps = np.array(list(completions.values()))
    rewards = np.array([reward_fn(y) for y in completions])
    assert np.exp(logps).sum() == pytest.approx(1.0)
    j_star = beta * np.log(np.sum(np.exp(logps + rewards / beta)))
    assert opt.objective == pytest.approx(j_star, rel=1e-10)
    # pi* per completion: product of the per-token pi*(a|s) along it
    log_star = np.log(np.exp(logps + rewards / beta) / np.exp(logps + rewards / beta).sum())
    prefixes: list[tuple[int, ...]] = [()]
    for _ in range(2):
        prefixes += [(*p, a) for p in prefixes if len(p) == len(prefixes[-1]) for a in range(2)]
    node_of = {p: i for i, p in enumerate(sorted(set(prefixes), key=lambda p: (len(p), p)))}
    for (y, _), expected in zip(completions.items(), log_star, strict=True):
        got, prefix = 0.0, ()
        for a in y + ((2,) if len(y) < 3 else ()):
            got += float(opt.log_pi[node_of[prefix], a])
            prefix = (*prefix, a)
        assert got == pytest.approx(expected, abs=1e-10)
    # the optimum's exact report: its objective is J*, its KL to itself 0; the reference's is lower
    star = policy_report(tree, opt.log_pi, ref, opt.log_pi, beta)
    assert star.objective == pytest.approx(j_star, rel=1e-10)
    assert star.kl_to_optimal == pytest.approx(0.0, abs=1e-12)
    base = policy_report(tree, ref, ref, opt.log_pi, beta)
    assert base.kl_to_reference == pytest.approx(0.0, abs=1e-12)
    assert base.reward == pytest.approx(float(np.exp(logps) @ rewards))
    assert base.objective < j_star
    # J* - J(pi) = beta KL(pi || pi*) for any pi (the gap identity of the soft optimum)
    assert j_star - base.objective == pytest.approx(beta * base.kl_to_optimal, rel=1e-9)


def test_soft_optimum_at_beta_zero_is_the_best_completion() -> None:
    def ref_fn(prefix: tuple[int, ...]) -> torch.Tensor:
        return torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64).log()

    tree, ref = tiny_tree(ref_fn, lambda y: float(y == (1, 0)), actions=3, length=3)
    opt = soft_optimum(tree, ref, 0.0)
    assert opt.objective == pytest.approx(1.0)


def test_bradley_terry_loss_against_hand_values():
    from rltrain.blocks.token_rewards import bradley_terry_loss

    # -log sigmoid(1 - 0) = log(1 + e^-1) = 0.3132617; -log sigmoid(-2) = log(1 + e^2) = 2.1269280
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    assert float(bradley_terry_loss(chosen, rejected)) == pytest.approx((0.3132617 + 2.1269280) / 2)
    assert float(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0]))) == pytest.approx(
        0.6931472
    )  # log 2: no preference yet
