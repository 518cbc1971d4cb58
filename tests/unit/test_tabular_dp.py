from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from rltrain.blocks.dp import (
    TabularModel,
    bellman_q,
    can_end,
    decision_states,
    ending_states,
    greedy_policy,
    loop_gain,
    model_from_P,
    model_of,
    policy_agreement,
    policy_evaluation,
    policy_iteration,
    proper_policy,
    q_error_vs_optimal,
    start_distribution_of,
    value_iteration,
)
from rltrain.envs.gridworld import DOWN, RIGHT, UP, GridWorldEnv
from rltrain.envs.traffic_light import FORWARD, STOP, TrafficLightEnv

GAMMA = 0.9

# Default 4x4 layout (S top-left, H at (3,2), G at (3,3)). d = number of steps to *enter* G
# on the shortest path that avoids H (from (3,1) the way round is up, right, right, down):
#   6 5 4 3
#   5 4 3 2
#   4 3 2 1
#   5 4 H G
# Reward 1 arrives on the d-th step, so with step_reward 0:  V*(s) = gamma^(d-1).
D = np.array([6, 5, 4, 3, 5, 4, 3, 2, 4, 3, 2, 1, 5, 4, 0, 0])
V_STAR_4X4 = np.array(
    [
        [0.59049, 0.6561, 0.729, 0.81],
        [0.6561, 0.729, 0.81, 0.9],
        [0.729, 0.81, 0.9, 1.0],
        [0.6561, 0.729, 0.0, 0.0],
    ]
).reshape(-1)
# With step_reward = -0.04 the d-1 floor steps cost -0.04 each before the +1:
#   V*(s) = -0.04 (1 - gamma^(d-1)) / (1 - gamma) + gamma^(d-1) = 1.4 gamma^(d-1) - 0.4
# (d=1: 1.0, d=2: 0.86, d=3: 0.734, d=4: 0.6206, d=5: 0.51854, d=6: 0.426686); the -1 trap
# is still never worth entering.
V_STAR_4X4_COST = np.array(
    [
        [0.426686, 0.51854, 0.6206, 0.734],
        [0.51854, 0.6206, 0.734, 0.86],
        [0.6206, 0.734, 0.86, 1.0],
        [0.51854, 0.6206, 0.0, 0.0],
    ]
).reshape(-1)


def test_hand_tables_agree_with_distances() -> None:
    mask = D > 0
    assert np.allclose(V_STAR_4X4[mask], GAMMA ** (D[mask] - 1))
    assert np.allclose(V_STAR_4X4_COST[mask], 1.4 * GAMMA ** (D[mask] - 1) - 0.4)


@pytest.mark.parametrize(("step_reward", "v_star"), [(0.0, V_STAR_4X4), (-0.04, V_STAR_4X4_COST)])
def test_value_and_policy_iteration_on_4x4(step_reward: float, v_star: np.ndarray) -> None:
    env = GridWorldEnv(step_reward=step_reward)
    model = model_of(env)
    assert model is not None
    vi = value_iteration(model, GAMMA)
    pi = policy_iteration(model, GAMMA)
    assert np.max(np.abs(vi.v - v_star)) < 1e-6
    assert np.max(np.abs(pi.v - v_star)) < 1e-6
    assert np.max(np.abs(vi.q - pi.q)) < 1e-8
    assert np.array_equal(vi.policy, pi.policy)
    rows = np.arange(16)
    # Greedy values: Q*(s, pi(s)) = V*(s) for both methods.
    assert np.allclose(vi.q[rows, vi.policy], v_star, atol=1e-6)
    assert np.allclose(pi.q[rows, pi.policy], v_star, atol=1e-6)
    # Ties go to the lowest index: at S both right (1) and down (2) are optimal.
    assert vi.policy[0] == RIGHT
    assert vi.policy[11] == DOWN  # (2,3) -> G
    assert vi.policy[13] == UP  # (3,1): the trap is to the right, the way round is up
    assert vi.residuals[-1] < 1e-10 and vi.sweeps == len(vi.residuals)
    assert pi.sweeps == len(pi.residuals) and pi.sweeps >= 2


def test_cliff_start_value() -> None:
    # Cliff layout, step -1, trap -100 (terminating), goal +1. The safe optimal path from S
    # is up, 11 x right, down: 12 steps of -1, then +1 on entering G at step 13:
    #   V*(S) = -(1 - gamma^12) / (1 - gamma) + gamma^12.
    env = GridWorldEnv(layout="cliff", step_reward=-1.0, trap_reward=-100.0)
    model = model_of(env)
    assert model is not None
    vi = value_iteration(model, GAMMA)
    expected = -(1 - GAMMA**12) / (1 - GAMMA) + GAMMA**12
    assert abs(vi.v[env.start_state] - expected) < 1e-6
    assert vi.policy[env.start_state] == UP


def test_traffic_light_closed_form() -> None:
    # p = switch_prob = 0.3, gamma = 0.9. Optimal: stop on red, forward on green, so
    #   V(r) = 0 + 0.9 (0.7 V(r) + 0.3 V(g))  ->  0.37 V(r) - 0.27 V(g) = 0
    #   V(g) = 1 + 0.9 (0.3 V(r) + 0.7 V(g))  -> -0.27 V(r) + 0.37 V(g) = 1
    # Determinant 0.37^2 - 0.27^2 = 0.064, so V(g) = 0.37 / 0.064 = 5.78125 and
    # V(r) = 0.27 / 0.064 = 4.21875. Then
    #   Q(r, forward) = -5 + 0.9 (0.7 V(r) + 0.3 V(g)) = -5 + V(r) = -0.78125
    #   Q(g, stop)    = V(g) - 1 = 4.78125.
    env = TrafficLightEnv(switch_prob=0.3, green_reward=1.0, red_penalty=-5.0)
    model = model_of(env)
    assert model is not None
    q_star = np.array([[4.21875, -0.78125], [4.78125, 5.78125]])
    for result in (value_iteration(model, GAMMA), policy_iteration(model, GAMMA)):
        assert np.allclose(result.v, [4.21875, 5.78125], atol=1e-8)
        assert np.allclose(result.q, q_star, atol=1e-8)
        assert result.policy.tolist() == [STOP, FORWARD]


def test_policy_evaluation_of_the_uniform_policy() -> None:
    # Uniform random policy: R_pi(r) = -2.5, R_pi(g) = 0.5.
    #   S = V(r) + V(g):  S = -2 + 0.9 S                 -> S = -20
    #   D = V(g) - V(r):  D = 3 + 0.9 (0.7 - 0.3) D     -> D = 3 / 0.64 = 4.6875
    # so V(r) = (S - D) / 2 = -12.34375, V(g) = (S + D) / 2 = -7.65625.
    model = model_of(TrafficLightEnv())
    assert model is not None
    v = policy_evaluation(model, np.full((2, 2), 0.5), GAMMA, 1e-12)
    assert np.allclose(v, [-12.34375, -7.65625], atol=1e-10)
    # A deterministic policy [S] gives the same as its one-hot [S, A] form.
    det = policy_evaluation(model, np.array([STOP, FORWARD]), GAMMA, 1e-12)
    assert np.allclose(det, policy_evaluation(model, np.eye(2)[[STOP, FORWARD]], GAMMA, 1e-12))


def test_undiscounted_episodic_case() -> None:
    # gamma = 1 with certain termination: S . G, step -1, goal +10: V(S) = -1 + 10 = 9.
    model = model_of(GridWorldEnv(layout="S.G", step_reward=-1.0, goal_reward=10.0))
    assert model is not None
    v = policy_evaluation(model, np.full(3, RIGHT), 1.0, 1e-12)
    assert np.allclose(v, [9.0, 10.0, 0.0])
    vi = value_iteration(model, 1.0)
    assert np.allclose(vi.v, [9.0, 10.0, 0.0])


def test_bellman_q_on_a_hand_model() -> None:
    # State 0, action 0: 0.5 -> s1 (r=2, continues), 0.5 -> s1 (r=4, terminates).
    # Action 1: 1.0 -> s0 (r=-1, continues). State 1 is absorbing.
    P = {
        0: {0: [(0.5, 1, 2.0, False), (0.5, 1, 4.0, True)], 1: [(1.0, 0, -1.0, False)]},
        1: {0: [(1.0, 1, 0.0, True)], 1: [(1.0, 1, 0.0, True)]},
    }
    model = model_from_P(P, 2, 2)
    assert model.terminal_states.tolist() == [False, True]
    assert np.allclose(model.transition[0, 0], [0.0, 1.0])
    assert np.allclose(model.continue_prob[0, 0], [0.0, 0.5])
    assert np.allclose(model.reward[0], [3.0, -1.0])
    q = bellman_q(model, np.array([10.0, 20.0]), 0.5)
    # Q(0,0) = 3 + 0.5 * 0.5 * 20 = 8;  Q(0,1) = -1 + 0.5 * 10 = 4;  state 1: 0.
    assert np.allclose(q, [[8.0, 4.0], [0.0, 0.0]])


def test_value_iteration_residuals_contract() -> None:
    model = model_of(gymnasium.make("FrozenLake-v1"))
    assert model is not None
    vi = value_iteration(model, 0.95)
    r = np.array(vi.residuals)
    # The Bellman operator is a gamma-contraction in the max norm.
    assert np.all(r[1:] <= 0.95 * r[:-1] + 1e-15)
    assert r[-1] < 1e-10 <= r[-2]


def test_non_convergence_warns_and_bad_gamma_raises() -> None:
    model = model_of(TrafficLightEnv())
    assert model is not None
    with pytest.warns(RuntimeWarning, match="did not reach"):
        value_iteration(model, 1.0, max_sweeps=20)
    with pytest.raises(ValueError, match="gamma"):
        value_iteration(model, 1.5)


@pytest.mark.parametrize(
    ("env_id", "terminals", "n_decision"),
    [
        ("FrozenLake-v1", [5, 7, 11, 12, 15], 11),
        ("CliffWalking-v1", [47], 37),
        ("Taxi-v4", [0, 85, 410, 475], 400),
    ],
)
def test_gymnasium_toy_text_models(env_id: str, terminals: list[int], n_decision: int) -> None:
    env = gymnasium.make(env_id)
    model = model_of(env)
    assert model is not None
    assert np.allclose(model.transition.sum(axis=2), 1.0)
    assert np.all(model.continue_prob <= model.transition + 1e-12)
    assert np.flatnonzero(model.terminal_states).tolist() == terminals
    mask = decision_states(model, start_distribution_of(env))
    assert mask.sum() == n_decision
    vi = value_iteration(model, 0.95)
    pi = policy_iteration(model, 0.95)
    assert np.max(np.abs(vi.v - pi.v)) < 1e-6
    assert policy_agreement(vi.q, pi.q, mask) == 1.0
    env.close()


def test_model_of_without_a_table_is_none() -> None:
    assert model_of(gymnasium.make("CartPole-v1")) is None


def test_decision_states() -> None:
    env = GridWorldEnv()
    model = model_of(env)
    assert model is not None
    expected = np.ones(16, dtype=bool)
    expected[[14, 15]] = False
    assert np.array_equal(decision_states(model, start_distribution_of(env)), expected)
    assert np.array_equal(decision_states(model), expected)
    # Walls and a floor pocket sealed off by walls are not decision states.
    sealed = GridWorldEnv(layout="S.G/###/.#.")
    m = model_of(sealed)
    assert m is not None
    assert np.flatnonzero(decision_states(m, start_distribution_of(sealed))).tolist() == [0, 1]
    assert np.flatnonzero(decision_states(m)).tolist() == [0, 1]


def test_greedy_ties_go_to_lowest_index() -> None:
    q = np.array([[1.0, 2.0, 2.0, 0.0], [3.0, 3.0, 3.0, 3.0], [0.0, 0.0, 5.0, 5.0 + 1e-12]])
    assert greedy_policy(q).tolist() == [1, 0, 2]
    assert greedy_policy(q, atol=0.0).tolist() == [1, 0, 3]


def test_q_error_and_policy_agreement_on_hand_arrays() -> None:
    q_star = np.array([[1.0, 2.0], [3.0, 3.0], [0.0, -1.0], [9.0, 9.0]])
    q = np.array([[1.5, 1.0], [2.0, 2.5], [0.1, -1.0], [0.0, 0.0]])
    mask = np.array([True, True, True, False])
    # |Q - Q*| over states 0..2: [[0.5, 1.0], [1.0, 0.5], [0.1, 0.0]] -> max 1.0
    assert q_error_vs_optimal(q, q_star, mask) == pytest.approx(1.0)
    assert q_error_vs_optimal(q, q_star, np.ones(4, dtype=bool)) == pytest.approx(9.0)
    # Greedy under q: [0, 1, 0]; optimal under q*: {1}, {0, 1}, {0} -> 2 of 3 agree.
    assert policy_agreement(q, q_star, mask) == pytest.approx(2 / 3)
    # atol widens the optimal set: with atol = 1, action 0 in state 0 counts as optimal.
    assert policy_agreement(q, q_star, mask, atol=1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        policy_agreement(q, q_star, np.zeros(4, dtype=bool))


def test_terminal_states_are_absorbing_in_the_model() -> None:
    model = model_of(GridWorldEnv(layout="maze8", slip=0.2))
    assert isinstance(model, TabularModel)
    for s in np.flatnonzero(model.terminal_states):
        assert np.allclose(model.transition[s, :, s], 1.0)
        assert not model.reward[s].any() and not model.continue_prob[s].any()
    q = value_iteration(model, GAMMA).q
    assert not q[model.terminal_states].any()


# --- gamma = 1: policies that end their episodes ---------------------------------------------
def _chain(step_reward: float) -> TabularModel:
    """States 0-1-2, 2 terminal; action 0 stays put, action 1 moves right (paying
    `step_reward`, +1 on entering 2)."""
    P = {
        0: {0: [(1.0, 0, step_reward, False)], 1: [(1.0, 1, step_reward, False)]},
        1: {0: [(1.0, 1, step_reward, False)], 1: [(1.0, 2, 1.0, True)]},
        2: {0: [(1.0, 2, 0.0, True)], 1: [(1.0, 2, 0.0, True)]},
    }
    return model_from_P(P, 3, 2)


def test_ending_states_and_proper_policy_on_a_chain() -> None:
    model = _chain(-0.1)
    assert ending_states(model, np.array([1, 1, 0])).tolist() == [True, True, True]
    # staying put in 1 traps 0 and 1 (0 leads into 1)
    assert ending_states(model, np.array([1, 0, 0])).tolist() == [False, False, True]
    assert can_end(model).tolist() == [True, True, True]
    assert proper_policy(model).tolist()[:2] == [1, 1]


def test_loop_gain_is_the_reward_per_step_of_a_loop_never_left() -> None:
    everywhere = np.ones(3, dtype=bool)
    assert loop_gain(_chain(0.25), np.array([0, 0, 0]), everywhere) == pytest.approx(0.25)
    assert loop_gain(_chain(-0.1), np.array([0, 0, 0]), everywhere) == pytest.approx(-0.1)
    assert loop_gain(_chain(0.25), np.array([1, 1, 0]), everywhere) == -np.inf  # it ends
    # a loop only entered from states outside `start` does not count
    only_one = np.array([False, True, False])
    assert loop_gain(_chain(0.25), np.array([0, 1, 0]), only_one) == -np.inf


def test_a_two_state_loop_with_a_negative_entry_but_positive_gain() -> None:
    # 0 -> 1 costs 5 once, then 1 <-> 2 earns +1 per step forever: the gain is +1, whatever
    # the way in cost (the estimate drops the first N steps)
    P = {
        0: {0: [(1.0, 1, -5.0, False)]},
        1: {0: [(1.0, 2, 1.0, False)]},
        2: {0: [(1.0, 1, 1.0, False)]},
    }
    model = model_from_P(P, 3, 1)
    gain = loop_gain(model, np.zeros(3, dtype=np.int64), np.ones(3, dtype=bool))
    assert gain == pytest.approx(1.0)
