"""Exact dynamic programming on small MDPs: the oracle that tabular learners are measured against,
and the sweeps the planners (`algo=value_iteration`, `algo=policy_iteration`) run one at a time.

Pure numpy, float64. The model comes from a gymnasium toy-text transition table
``P[s][a] = [(prob, next_state, reward, terminated), ...]`` (rltrain's gridworld and traffic
light, gymnasium's FrozenLake, CliffWalking and Taxi).

Bellman optimality backup used throughout (Sutton & Barto 2018, eq. 4.2 / 4.6)::

    Q(s, a) = R(s, a) + gamma * sum_s' C(s, a, s') * V(s')

with ``R(s, a) = sum_i p_i r_i`` the expected immediate reward and ``C(s, a, s')`` the
probability of moving to ``s'`` *without* terminating: a terminating transition contributes its
reward and nothing after it, which is how terminated and truncated stay apart (only
termination cuts the bootstrap).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

# Action values closer than this count as tied; ties go to the lowest action index. The margin
# keeps value iteration and policy iteration on the same policy despite round-off.
TIE_ATOL = 1e-9


class TabularModel(NamedTuple):
    """Exact finite MDP.

    transition:     [S, A, S'] probabilities, each (s, a) row sums to 1.
    reward:         [S, A] expected immediate reward.
    continue_prob:  [S, A, S'] probability of reaching s' by a transition that does not
                    terminate (transition minus the terminating mass).
    terminal_states: [S] bool, states where the episode is over. The model makes them
                    absorbing (self-loop, zero reward, zero continue mass), so V = Q = 0 there.
    """

    transition: np.ndarray
    reward: np.ndarray
    continue_prob: np.ndarray
    terminal_states: np.ndarray


class DPResult(NamedTuple):
    """Result of value or policy iteration.

    q: [S, A], v: [S], policy: [S] greedy actions (ties -> lowest index),
    residuals: value iteration: max_s |V_k+1(s) - V_k(s)| per sweep; policy iteration: the
    same quantity between successive policy evaluations (the first against V = 0),
    sweeps: number of sweeps (value iteration) or improvement rounds (policy iteration).
    """

    q: np.ndarray
    v: np.ndarray
    policy: np.ndarray
    residuals: list[float]
    sweeps: int


P_Table = Mapping[int, Mapping[int, Sequence[tuple[float, int, float, bool]]]]


def model_from_P(
    P: P_Table,
    n_states: int,
    n_actions: int,
    start: np.ndarray | None = None,
) -> TabularModel:
    """Build a TabularModel from a toy-text table ``P[s][a] = [(p, s', r, terminated), ...]``.

    Duplicate next states are summed. A state is terminal when
    (a) every action self-loops with ``terminated=True`` and zero reward (FrozenLake holes and
        goal, rltrain's gridworld G and H), or
    (b) it is only ever entered by terminating transitions: CliffWalking's goal, Taxi's
        drop-off states, whose own rows in P are never used in an episode. With a `start`
        distribution this is judged from the states reachable from the start (found by
        following non-terminating transitions), which is exact; without one, from all
        transitions in P (Taxi then has no terminal state, because P also lists moves between
        unreachable states; this only affects the flag, not any reachable value).
    Terminal states are made absorbing in the model: self-loop, zero reward, no continuation.
    """
    transition = np.zeros((n_states, n_actions, n_states))
    reward = np.zeros((n_states, n_actions))
    continue_prob = np.zeros((n_states, n_actions, n_states))
    self_absorbing = np.ones(n_states, dtype=bool)
    for s in range(n_states):
        row = P[s]
        for a in range(n_actions):
            for prob, ns, r, terminated in row[a]:
                p = float(prob)
                ns = int(ns)
                transition[s, a, ns] += p
                reward[s, a] += p * float(r)
                if not terminated:
                    continue_prob[s, a, ns] += p
                if p > 0.0 and not (ns == s and terminated and float(r) == 0.0):
                    self_absorbing[s] = False
    if start is None:
        entered = transition.sum(axis=(0, 1)) > 0.0
        entered_continuing = continue_prob.sum(axis=(0, 1)) > 0.0
        terminal = self_absorbing | (entered & ~entered_continuing)
    else:
        live = _reachable(continue_prob.sum(axis=1) > 0.0, np.asarray(start).reshape(-1) > 0.0)
        entered = transition[live].sum(axis=(0, 1)) > 0.0
        terminal = self_absorbing | (entered & ~live)
    idx = np.flatnonzero(terminal)
    transition[idx] = 0.0
    transition[idx, :, idx] = 1.0
    reward[idx] = 0.0
    continue_prob[idx] = 0.0
    return TabularModel(transition, reward, continue_prob, terminal)


def _reachable(step: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Breadth-first search: [S] bool, the states reachable from `seeds` along `step` [S, S']."""
    reached = seeds.copy()
    frontier = seeds.copy()
    while frontier.any():
        frontier = step[frontier].any(axis=0) & ~reached
        reached |= frontier
    return reached


def model_of(env: Any) -> TabularModel | None:
    """The exact model of `env` when it exposes a toy-text ``P`` table, else None.

    The env's start distribution (``initial_state_distrib``), when it has one, is used to tell
    terminal states (see model_from_P). Works through wrappers (``env.unwrapped``): rltrain's
    gridworld and traffic light, gymnasium's FrozenLake, CliffWalking and Taxi (not with Taxi's
    ``fickle_passenger``, whose extra randomness is not in P). Vector envs and continuous
    spaces give None.
    """
    base = getattr(env, "unwrapped", env)
    P = getattr(base, "P", None)
    obs_space = getattr(base, "observation_space", None)
    act_space = getattr(base, "action_space", None)
    if not isinstance(P, Mapping):
        return None
    n_states = getattr(obs_space, "n", None)
    n_actions = getattr(act_space, "n", None)
    if n_states is None or n_actions is None or getattr(obs_space, "shape", None) != ():
        return None
    return model_from_P(P, int(n_states), int(n_actions), start=start_distribution_of(env))


def start_distribution_of(env: Any) -> np.ndarray | None:
    """The start-state distribution (toy-text ``initial_state_distrib``) of `env`, if it has one."""
    dist = getattr(getattr(env, "unwrapped", env), "initial_state_distrib", None)
    return None if dist is None else np.asarray(dist, dtype=np.float64)


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")


def bellman_q(model: TabularModel, V: np.ndarray, gamma: float) -> np.ndarray:
    """One Bellman backup from state values to action values.

    ``Q[s, a] = R[s, a] + gamma * sum_s' C[s, a, s'] * V[s']``, with C = model.continue_prob.
    """
    return model.reward + gamma * (model.continue_prob @ V)


def greedy_policy(q: np.ndarray, atol: float = TIE_ATOL) -> np.ndarray:
    """Greedy actions ``argmax_a q[s, a]``; values within `atol` of the max tie, lowest first."""
    best = q.max(axis=1, keepdims=True)
    return np.argmax(q >= best - atol, axis=1).astype(np.int64)


def value_iteration_sweep(
    model: TabularModel, q: np.ndarray, v: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """One synchronous sweep from Q = bellman_q(V): ``V'(s) = max_a Q(s, a)``, then Q' of V'.

    Returns (V', Q', max_s |V'(s) - V(s)|); the planner `algo=value_iteration` runs one sweep
    per step, `value_iteration` until the residual is below its tolerance.
    """
    v_new = q.max(axis=1)
    residual = float(np.max(np.abs(v_new - v), initial=0.0))
    return v_new, bellman_q(model, v_new, gamma), residual


def value_iteration(
    model: TabularModel, gamma: float, tol: float = 1e-10, max_sweeps: int = 100_000
) -> DPResult:
    """Synchronous value iteration: ``V_{k+1}(s) = max_a [R(s,a) + g sum_s' C(s,a,s') V_k(s')]``.

    (g = gamma.)

    Starts from V = 0 and stops when ``max_s |V_{k+1}(s) - V_k(s)| < tol`` (then
    ``|V_{k+1} - V*| <= tol * gamma / (1 - gamma)``), or after `max_sweeps` with a warning.
    """
    _check_gamma(gamma)
    v = np.zeros(model.reward.shape[0])
    residuals: list[float] = []
    q = bellman_q(model, v, gamma)
    for _ in range(max_sweeps):
        v, q, residual = value_iteration_sweep(model, q, v, gamma)
        residuals.append(residual)
        if residual < tol:
            break
    else:
        warnings.warn(
            f"value_iteration did not reach tol={tol} in {max_sweeps} sweeps "
            f"(last residual {residuals[-1]:.3g})",
            RuntimeWarning,
            stacklevel=2,
        )
    return DPResult(q, q.max(axis=1), greedy_policy(q), residuals, len(residuals))


def _policy_matrices(model: TabularModel, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(R_pi [S], C_pi [S, S'])`` for a deterministic [S] or stochastic [S, A] policy."""
    policy = np.asarray(policy)
    n_states, n_actions = model.reward.shape
    if policy.ndim == 1:
        rows = np.arange(n_states)
        return model.reward[rows, policy], model.continue_prob[rows, policy]
    if policy.shape != (n_states, n_actions):
        raise ValueError(f"policy must be [S] actions or [S, A] probabilities, got {policy.shape}")
    return (
        np.einsum("sa,sa->s", policy, model.reward),
        np.einsum("sa,sat->st", policy, model.continue_prob),
    )


def policy_evaluation(
    model: TabularModel,
    policy: np.ndarray,
    gamma: float,
    tol: float = 1e-10,
    max_sweeps: int = 100_000,
) -> np.ndarray:
    """State values of `policy`: the solution of ``V = R_pi + gamma * C_pi V``.

    ``R_pi(s) = sum_a pi(a|s) R(s,a)``, ``C_pi(s,s') = sum_a pi(a|s) C(s,a,s')``; `policy` is
    [S] actions or [S, A] probabilities. For gamma < 1, ``I - gamma C_pi`` is invertible (its
    rows sum to at most gamma off the diagonal) and the system is solved exactly; for
    gamma = 1 iterative sweeps run until the max change is below `tol` (they converge only
    when the policy terminates with probability 1).
    """
    _check_gamma(gamma)
    r_pi, c_pi = _policy_matrices(model, policy)
    n_states = r_pi.shape[0]
    if gamma < 1.0:
        return np.linalg.solve(np.eye(n_states) - gamma * c_pi, r_pi)
    v = np.zeros(n_states)
    for _ in range(max_sweeps):
        v_new = r_pi + gamma * (c_pi @ v)
        if np.max(np.abs(v_new - v), initial=0.0) < tol:
            return v_new
        v = v_new
    warnings.warn(
        f"policy_evaluation did not reach tol={tol} in {max_sweeps} sweeps",
        RuntimeWarning,
        stacklevel=2,
    )
    return v


def policy_iteration_round(
    model: TabularModel, policy: np.ndarray, gamma: float, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """One round of Howard's policy iteration: V_pi by `policy_evaluation`, Q_pi = bellman_q(V_pi),
    then each state switches to ``argmax_a Q_pi(s, a)`` if that is strictly better than its action
    (by more than TIE_ATOL, so ties cannot cycle). Returns (V_pi, Q_pi, the new policy, whether
    the policy was already stable, i.e. optimal)."""
    v = policy_evaluation(model, policy, gamma, tol)
    q = bellman_q(model, v, gamma)
    rows = np.arange(policy.shape[0])
    improve = q.max(axis=1) > q[rows, policy] + TIE_ATOL
    if not improve.any():
        return v, q, policy, True
    return v, q, np.where(improve, greedy_policy(q), policy), False


def policy_iteration(
    model: TabularModel, gamma: float, tol: float = 1e-10, max_rounds: int = 10_000
) -> DPResult:
    """Howard's policy iteration: evaluate pi, then ``pi'(s) = argmax_a Q_pi(s, a)``, until stable.

    An action is only replaced by a strictly better one (by more than TIE_ATOL), so ties cannot
    make it cycle. The returned policy is the greedy policy of the final Q with ties to the
    lowest index, the same rule as value_iteration.
    """
    _check_gamma(gamma)
    n_states = model.reward.shape[0]
    policy = np.zeros(n_states, dtype=np.int64)
    v_prev = np.zeros(n_states)
    residuals: list[float] = []
    q = bellman_q(model, v_prev, gamma)
    for _ in range(max_rounds):
        v, q, policy, stable = policy_iteration_round(model, policy, gamma, tol)
        residuals.append(float(np.max(np.abs(v - v_prev), initial=0.0)))
        v_prev = v
        if stable:
            break
    else:
        warnings.warn(
            f"policy_iteration did not stabilise in {max_rounds} rounds",
            RuntimeWarning,
            stacklevel=2,
        )
    return DPResult(q, q.max(axis=1), greedy_policy(q), residuals, len(residuals))


# --- gamma = 1: which policies end the episode --------------------------------------------------
# Without discounting a return is a finite sum only for a policy that reaches a terminal state
# with probability 1 (a "proper" policy, Bertsekas & Tsitsiklis 1991, stochastic shortest
# paths). Value and policy iteration then converge to a finite optimum when a proper policy
# exists and every improper one does worse; these helpers let the planners check that.


def _ends_now(model: TabularModel) -> np.ndarray:
    """[S, A] bool: taking a in s may end the episode (some of its mass terminates)."""
    return model.continue_prob.sum(axis=2) < 1.0 - 1e-12


def ending_states(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    """[S] bool: the states from which deterministic `policy` ends the episode with probability 1.

    A state fails when it can reach (along transitions of positive probability) a state from
    which no path ends the episode: in a finite chain every other state is absorbed for sure.
    """
    rows = np.arange(policy.shape[0])
    edges = model.continue_prob[rows, policy] > 0.0  # [S, S']
    leaks = _ends_now(model)[rows, policy]
    trapped = ~_reachable(edges.T, leaks)  # no path to an ending from these
    return ~_reachable(edges.T, trapped)


def can_end(model: TabularModel) -> np.ndarray:
    """[S] bool: the states from which some policy can end the episode."""
    edges = np.asarray((model.continue_prob > 0.0).any(axis=1))  # [S, S'] under some action
    ends = np.asarray(_ends_now(model).any(axis=1))
    return _reachable(edges.T, ends)


def proper_policy(model: TabularModel) -> np.ndarray:
    """A deterministic policy that ends the episode with probability 1 from every state of
    `can_end` (the others keep action 0): layer by layer back from the endings, each state takes
    an action with a positive chance of moving one layer closer, so from anywhere an ending is
    at most S steps away with positive probability."""
    ends = _ends_now(model)
    policy = np.zeros(ends.shape[0], dtype=np.int64)
    done = np.asarray(ends.any(axis=1))
    policy[done] = np.argmax(ends[done], axis=1)
    while True:
        closer = (model.continue_prob[:, :, done] > 0.0).any(axis=2) & ~done[:, None]  # [S, A]
        new = np.asarray(closer.any(axis=1))
        if not new.any():
            return policy
        policy[new] = np.argmax(closer[new], axis=1)
        done |= new


def loop_gain(model: TabularModel, policy: np.ndarray, start: np.ndarray) -> float:
    """The largest average reward per step `policy` earns in a loop it never leaves, among the
    loops it can enter from the `start` states ([S] bool), or -inf when it has none there.
    Positive: its return grows without bound under gamma = 1.

    Estimated as the reward of steps N+1..2N divided by N from each trapped state, which drops
    the reward on the way into the loop; N grows with the loop's size so that a loop's period
    and mixing are covered (exact for deterministic loops).
    """
    rows = np.arange(policy.shape[0])
    # the states that cannot reach an ending at all: their transitions stay among themselves
    edges = model.continue_prob[rows, policy] > 0.0
    stuck = ~_reachable(edges.T, _ends_now(model)[rows, policy]) & _reachable(edges, start)
    if not stuck.any():
        return -float("inf")
    c = model.continue_prob[rows, policy][np.ix_(stuck, stuck)]
    r = model.reward[rows, policy][stuck]
    n = 4 * int(stuck.sum()) + 64
    total, window = np.zeros_like(r), np.zeros_like(r)
    for k in range(2 * n):
        total = r + c @ total  # k+1 steps of reward
        if k + 1 == n:
            window = total.copy()
    return float(np.max((total - window) / n))


def decision_states(model: TabularModel, start: np.ndarray | None = None) -> np.ndarray:
    """[S] bool mask of the states where an agent actually chooses: reachable and not terminal.

    Reachable = found by breadth-first search over non-terminating transitions
    (``continue_prob > 0``) from the start states (``start > 0``). Without a start
    distribution every state entered from a *different* state seeds the search, which leaves
    out isolated cells such as gridworld walls. Pass ``start_distribution_of(env)`` to be exact.
    """
    n_states = model.reward.shape[0]
    step = model.continue_prob.sum(axis=1) > 0.0  # [S, S'] s can lead to s' without ending
    if start is not None:
        frontier = np.asarray(start, dtype=np.float64).reshape(n_states) > 0.0
    else:
        entered = model.transition.sum(axis=1) > 0.0
        np.fill_diagonal(entered, False)
        frontier = entered.any(axis=0)
    return _reachable(step, frontier & ~model.terminal_states) & ~model.terminal_states


def q_error_vs_optimal(q: np.ndarray, q_star: np.ndarray, state_mask: np.ndarray) -> float:
    """``max_{s in mask, a} |Q(s, a) - Q*(s, a)|`` (0.0 for an empty mask)."""
    diff = np.abs(np.asarray(q, dtype=np.float64) - q_star)[np.asarray(state_mask, dtype=bool)]
    return float(diff.max(initial=0.0))


def policy_agreement(
    q: np.ndarray, q_star: np.ndarray, state_mask: np.ndarray, atol: float = 1e-8
) -> float:
    """Share of masked states whose greedy action under `q` is optimal under `q_star`.

    The greedy action is ``argmax_a q[s, a]`` (lowest index on ties); it counts as optimal when
    ``q_star[s, a] >= max_a' q_star[s, a'] - atol``. Raises ValueError for an empty mask.
    """
    mask = np.asarray(state_mask, dtype=bool)
    if not mask.any():
        raise ValueError("policy_agreement needs at least one state in state_mask")
    qm = np.asarray(q, dtype=np.float64)[mask]
    qs = np.asarray(q_star, dtype=np.float64)[mask]
    greedy = np.argmax(qm, axis=1)
    chosen = qs[np.arange(qs.shape[0]), greedy]
    return float(np.mean(chosen >= qs.max(axis=1) - atol))
