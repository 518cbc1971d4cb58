"""Return and advantage estimators against hand-computed arrays."""

from __future__ import annotations

import pytest
import torch

from rltrain.blocks.returns import (
    discounted_returns,
    episode_returns,
    gae,
    nstep_returns,
    td_errors,
)

# Two envs, T = 5, gamma = 0.9, columns = envs.
# env 0: terminated at t=2 (next_values[2] = 7.0 is the final obs's value and must be ignored).
# env 1: truncated at t=1 (next_values[1] = 10.0 is the final obs's value and must be used).
# Elsewhere next_values[t] = values[t+1] inside an episode, as a critic would give.
GAMMA = 0.9
REWARDS = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0], [5.0, 0.0]])
VALUES = torch.tensor([[0.5, 1.0], [1.0, 2.0], [1.5, 3.0], [2.0, 4.0], [2.5, 5.0]])
NEXT_VALUES = torch.tensor([[1.0, 2.0], [1.5, 10.0], [7.0, 4.0], [2.5, 5.0], [3.0, 6.0]])
TERMINATED = torch.tensor([[0, 0], [0, 0], [1, 0], [0, 0], [0, 0]], dtype=torch.bool)
TRUNCATED = torch.tensor([[0, 0], [0, 1], [0, 0], [0, 0], [0, 0]], dtype=torch.bool)

# delta_t = r_t + 0.9 (1 - term_t) V' - V, by hand:
# env 0: 1 + .9*1 - .5 = 1.4 | 2 + .9*1.5 - 1 = 2.35 | 3 + 0 - 1.5 = 1.5 | 4 + .9*2.5 - 2 = 4.25
#        | 5 + .9*3 - 2.5 = 5.2
# env 1: 0 + .9*2 - 1 = 0.8 | 1 + .9*10 - 2 = 8.0 | 0 + .9*4 - 3 = 0.6 | 1 + .9*5 - 4 = 1.5
#        | 0 + .9*6 - 5 = 0.4
TD = torch.tensor([[1.4, 0.8], [2.35, 8.0], [1.5, 0.6], [4.25, 1.5], [5.2, 0.4]])
# G_t (bootstrapped at the truncation and the rollout end, 0 after the termination):
# env 0: G4 = 5 + .9*3 = 7.7, G3 = 4 + .9*7.7 = 10.93, G2 = 3, G1 = 2 + .9*3 = 4.7,
#        G0 = 1 + .9*4.7 = 5.23
# env 1: G4 = .9*6 = 5.4, G3 = 1 + .9*5.4 = 5.86, G2 = .9*5.86 = 5.274, G1 = 1 + .9*10 = 10,
#        G0 = .9*10 = 9
MC = torch.tensor([[5.23, 9.0], [4.7, 10.0], [3.0, 5.274], [10.93, 5.86], [7.7, 5.4]])
# GAE lambda = 0.5 (gamma*lambda = 0.45), recursion cut at both episode ends:
# env 0: A4 = 5.2, A3 = 4.25 + .45*5.2 = 6.59, A2 = 1.5, A1 = 2.35 + .45*1.5 = 3.025,
#        A0 = 1.4 + .45*3.025 = 2.76125
# env 1: A4 = .4, A3 = 1.5 + .45*.4 = 1.68, A2 = .6 + .45*1.68 = 1.356, A1 = 8.0,
#        A0 = .8 + .45*8 = 4.4
GAE_HALF = torch.tensor([[2.76125, 4.4], [3.025, 8.0], [1.5, 1.356], [6.59, 1.68], [5.2, 0.4]])


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=1e-5, rtol=1e-6)


def test_td_errors_hand_computed() -> None:
    assert close(td_errors(REWARDS, VALUES, NEXT_VALUES, TERMINATED, GAMMA), TD)


def test_gae_lambda_zero_is_td_error() -> None:
    adv, ret = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 0.0)
    assert close(adv, TD)
    assert close(ret, TD + VALUES)


def test_gae_lambda_one_is_mc_return_minus_value() -> None:
    assert close(discounted_returns(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA), MC)
    adv, ret = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 1.0)
    # hand: MC - V = [[4.73, 8.0], [3.7, 8.0], [1.5, 2.274], [8.93, 1.86], [5.2, 0.4]]
    expected = torch.tensor([[4.73, 8.0], [3.7, 8.0], [1.5, 2.274], [8.93, 1.86], [5.2, 0.4]])
    assert close(adv, expected)
    assert close(ret, MC)


def test_gae_intermediate_lambda_hand_computed() -> None:
    adv, ret = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 0.5)
    assert close(adv, GAE_HALF)
    assert close(ret, GAE_HALF + VALUES)


def test_truncation_bootstraps_and_termination_does_not() -> None:
    # the value of the terminated step's final obs (env 0, t=2) must not matter ...
    nv = NEXT_VALUES.clone()
    nv[2, 0] = -1000.0
    adv, _ = gae(REWARDS, VALUES, nv, TERMINATED, TRUNCATED, GAMMA, 0.95)
    ref, _ = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 0.95)
    assert close(adv, ref)
    assert close(discounted_returns(REWARDS, nv, TERMINATED, TRUNCATED, GAMMA), MC)
    # ... while the truncated step's one (env 1, t=1) does, by gamma * change, on that step only
    nv = NEXT_VALUES.clone()
    nv[1, 1] += 1.0
    adv, _ = gae(REWARDS, VALUES, nv, TERMINATED, TRUNCATED, GAMMA, 0.0)
    diff = adv - TD
    assert diff[1, 1].item() == pytest.approx(0.9)
    diff[1, 1] = 0.0
    assert close(diff, torch.zeros_like(diff))
    # and nothing of env 1's second episode leaks into its first: A_1 (done) is delta_1 only
    adv, _ = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 1.0)
    assert adv[1, 1].item() == pytest.approx(8.0)


def test_float_flags_and_1d_inputs_match_and_inputs_untouched() -> None:
    before = [t.clone() for t in (REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED)]
    adv_b, _ = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 0.5)
    adv_f, _ = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED.float(), TRUNCATED.float(), GAMMA, 0.5)
    assert close(adv_b, adv_f)
    # one env as a [T] tensor gives that env's column
    adv_1d, _ = gae(
        REWARDS[:, 1], VALUES[:, 1], NEXT_VALUES[:, 1], TERMINATED[:, 1], TRUNCATED[:, 1], 0.9, 0.5
    )
    assert close(adv_1d, GAE_HALF[:, 1])
    for t, b in zip((REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED), before, strict=True):
        assert torch.equal(t, b)


def test_episode_returns() -> None:
    out = episode_returns(torch.tensor([1.0, 1.0, 1.0]), 0.9)
    assert close(out, torch.tensor([2.71, 1.9, 1.0]))


# n-step data: T = 7, two envs, gamma = 0.5.
# env 0: all rewards 1, terminated at t=3 (next_values[3] = 99 ignored).
# env 1: rewards 2,0,2,0,2,0,2; truncated at t=1 (bootstrap 8), terminated at t=5.
N_GAMMA = 0.5
N_REWARDS = torch.tensor(
    [[1.0, 2.0], [1.0, 0.0], [1.0, 2.0], [1.0, 0.0], [1.0, 2.0], [1.0, 0.0], [1.0, 2.0]]
)
N_NEXT_VALUES = torch.tensor(
    [[10.0, 1.0], [20.0, 8.0], [30.0, 4.0], [99.0, 4.0], [50.0, 4.0], [60.0, 16.0], [70.0, 2.0]]
)
N_TERM = torch.zeros(7, 2, dtype=torch.bool)
N_TERM[3, 0] = True
N_TERM[5, 1] = True
N_TRUNC = torch.zeros(7, 2, dtype=torch.bool)
N_TRUNC[1, 1] = True


def test_nstep_n1_is_td_target() -> None:
    # r + 0.5 (1 - term) V'
    expected = torch.tensor(
        [[6.0, 2.5], [11.0, 4.0], [16.0, 4.0], [1.0, 2.0], [26.0, 4.0], [31.0, 0.0], [36.0, 3.0]]
    )
    out = nstep_returns(N_REWARDS, N_NEXT_VALUES, N_TERM, N_TRUNC, N_GAMMA, 1)
    assert close(out, expected)


def test_nstep_n3_across_termination_truncation_and_rollout_end() -> None:
    # env 0: t0: 1 + .5 + .25 + .125*30 = 5.5     (full window, bootstraps from V(s_3))
    #        t1: 1 + .5 + .25 + 0 = 1.75           (window ends at the termination t=3)
    #        t2: 1 + .5 = 1.5;  t3: 1
    #        t4: 1.75 + .125*70 = 10.5;  t5: 1.5 + .25*70 = 19;  t6: 1 + .5*70 = 36 (rollout end)
    # env 1: t0: 2 + 0 + .25*8 = 4   (stops at the truncation t=1 and bootstraps from 8)
    #        t1: 0 + .5*8 = 4;  t2: 2 + 0 + .25*2 + .125*4 = 3;  t3: 0 + .5*2 + 0 = 1
    #        t4: 2 + 0 = 2;  t5: 0 (terminated);  t6: 2 + .5*2 = 3
    expected = torch.tensor(
        [[5.5, 4.0], [1.75, 4.0], [1.5, 3.0], [1.0, 1.0], [10.5, 2.0], [19.0, 0.0], [36.0, 3.0]]
    )
    out = nstep_returns(N_REWARDS, N_NEXT_VALUES, N_TERM, N_TRUNC, N_GAMMA, 3)
    assert close(out, expected)


def test_nstep_with_n_at_least_T_is_the_mc_return() -> None:
    mc = discounted_returns(N_REWARDS, N_NEXT_VALUES, N_TERM, N_TRUNC, N_GAMMA)
    for n in (7, 20):
        assert close(nstep_returns(N_REWARDS, N_NEXT_VALUES, N_TERM, N_TRUNC, N_GAMMA, n), mc)
    assert close(nstep_returns(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 5), MC)


def test_nstep_rejects_bad_n() -> None:
    with pytest.raises(ValueError):
        nstep_returns(N_REWARDS, N_NEXT_VALUES, N_TERM, N_TRUNC, N_GAMMA, 0)
