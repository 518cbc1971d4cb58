"""Tabular TD control: Q-learning, SARSA and expected SARSA (Sutton & Barto 2018, ch. 6).

The three algorithms are the same loop and differ only in the TD target of the update
``Q(s, a) <- Q(s, a) + alpha * (target - Q(s, a))`` (g = gamma, 0 after a termination):

    Q-learning      target = r + g * max_a' Q(s', a')                 (Watkins 1989)
    SARSA           target = r + g * Q(s', a'),  a' the action taken next in s'   (Rummery &
                                                                        Niranjan 1994)
    expected SARSA  target = r + g * sum_a' pi(a'|s') Q(s', a'), pi the epsilon-greedy
                    policy itself                                       (van Seijen et al. 2009)

Everything else is shared: the epsilon-greedy behaviour with a schedule, the step size (constant,
``alpha / N(s, a)^omega`` per state-action pair, or decaying linearly), optimistic initial values,
a uniform first action per episode (for exploring starts), and, when the env
exposes its model, the exact optimum Q* from value iteration as an oracle for the diagnostics.

Read top to bottom: config, schedules and targets (pure functions), the table update, the
learner class; then the shared oracle / diagnostics / terminal view, which the planners in
``rltrain.algos.planning`` reuse.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from rltrain.algos.base import Context
from rltrain.core.checkpoint import envs_restored
from rltrain.core.tabular import (
    TabularModel,
    decision_states,
    model_of,
    policy_agreement,
    q_error_vs_optimal,
    start_distribution_of,
    value_iteration,
)
from rltrain.envs import render_grid
from rltrain.envs.factory import make_single_env
from rltrain.errors import UserError
from rltrain.logging import Recorder

ALPHA_SCHEDULES = ("constant", "visits", "linear")
EPSILON_SCHEDULES = ("linear", "exponential")


@dataclass
class TDConfig:
    """Hyperparameters shared by q_learning, sarsa and expected_sarsa (`algo.<key>`).

    Step sizes. visits: for 0.5 < omega <= 1 the sequence alpha / N^omega meets the
    Robbins-Monro conditions (sum alpha = inf, sum alpha^2 < inf) per pair, under which
    Q-learning converges to Q* (Watkins & Dayan 1992) and SARSA with a GLIE exploration schedule
    too (Singh et al. 2000); omega < 1 forgets early targets faster than a plain average, which
    converges polynomially rather than exponentially slowly in 1 / (1 - gamma) (Even-Dar &
    Mansour 2003). linear is not Robbins-Monro, but it forgets the early targets of an on-policy
    learner (values of the exploring policy) geometrically, where 1 / N^omega keeps a polynomial
    share of them.

    random_first_action with env.random_start=true (gridworld) gives exploring starts (Sutton &
    Barto 2018, sec. 5.3): every (s, a) keeps being updated after epsilon has decayed, which
    SARSA and expected SARSA need to reach Q* everywhere, since they learn the values of the
    policy they follow and a greedy policy stops visiting the pairs it does not choose.
    """

    name: str = "q_learning"
    gamma: float = 0.99  # discount
    # step size: the constant, the numerator of visits, the start of linear
    alpha: float = 0.1
    # constant | visits: alpha / N(s, a)^alpha_omega, N the pair's visits so far (this one
    # included) | linear: alpha -> alpha_end in a straight line over total_steps
    alpha_schedule: str = "constant"
    alpha_omega: float = 0.8  # visits: the exponent, in (0.5, 1]
    alpha_end: float = 0.1  # linear: the step size at the end of training, in [0, alpha]
    # Epsilon-greedy exploration from epsilon_start to epsilon_end over the first
    # epsilon_fraction of total_steps, then constant.
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_fraction: float = 0.5
    # linear | exponential: eps = start * (end / start)^(progress / fraction) (both > 0)
    epsilon_schedule: str = "linear"
    # Initial value of every Q(s, a); above the largest return it is "optimism in the face of
    # uncertainty": untried actions look best until tried (Sutton & Barto 2018, sec. 2.6).
    initial_q: float = 0.0
    # the first action of every training episode is uniform, whatever epsilon is (with
    # env.random_start=true: exploring starts, which on-policy learners need to reach Q*)
    random_first_action: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in [0, 1]")
        if not 0.0 < self.alpha <= 1.0:
            raise UserError(f"algo.alpha={self.alpha} must be in (0, 1]")
        if self.alpha_schedule not in ALPHA_SCHEDULES:
            raise UserError(
                f"algo.alpha_schedule={self.alpha_schedule} is not known; "
                f"use {' or '.join(ALPHA_SCHEDULES)}"
            )
        if self.alpha_schedule == "visits" and not 0.5 < self.alpha_omega <= 1.0:
            raise UserError(
                f"algo.alpha_omega={self.alpha_omega} must be in (0.5, 1] "
                "(Robbins-Monro: the step sizes must sum to infinity, their squares must not)"
            )
        if self.alpha_schedule == "linear" and not 0.0 <= self.alpha_end <= self.alpha:
            raise UserError(
                f"algo.alpha_end={self.alpha_end} must be in [0, algo.alpha={self.alpha}] "
                "(alpha_schedule=linear decays alpha to alpha_end)"
            )
        for key in ("epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be in [0, 1]")
        if not 0.0 < self.epsilon_fraction <= 1.0:
            raise UserError(f"algo.epsilon_fraction={self.epsilon_fraction} must be in (0, 1]")
        if self.epsilon_schedule not in EPSILON_SCHEDULES:
            raise UserError(
                f"algo.epsilon_schedule={self.epsilon_schedule} is not known; "
                f"use {' or '.join(EPSILON_SCHEDULES)}"
            )
        exponential = self.epsilon_schedule == "exponential"
        if exponential and min(self.epsilon_start, self.epsilon_end) <= 0:
            raise UserError(
                "algo.epsilon_schedule=exponential needs epsilon_start and epsilon_end > 0 "
                "(a geometric schedule never reaches 0); use linear to decay to 0"
            )


@dataclass
class QLearningConfig(TDConfig):
    name: str = "q_learning"


@dataclass
class SarsaConfig(TDConfig):
    name: str = "sarsa"


@dataclass
class ExpectedSarsaConfig(TDConfig):
    name: str = "expected_sarsa"


# --- schedules (pure) -------------------------------------------------------------------------
def epsilon_at(progress: float, start: float, end: float, fraction: float, schedule: str) -> float:
    """Exploration rate after `progress` (in [0, 1]) of the step budget.

    With p = min(1, progress / fraction):
    linear: ``eps = start + p * (end - start)``; exponential: ``eps = start * (end / start)^p``.
    """
    p = min(1.0, progress / fraction)
    if schedule == "exponential":
        return float(start * (end / start) ** p)
    return start + p * (end - start)


def alpha_at(progress: float, alpha: float, end: float, schedule: str) -> float:
    """Base step size after `progress` (in [0, 1]) of the budget: ``alpha + progress * (end -
    alpha)`` for the linear schedule, ``alpha`` for the others (visits divides it per pair)."""
    if schedule == "linear":
        return alpha + min(1.0, progress) * (end - alpha)
    return alpha


def step_sizes(alpha: float, visits: np.ndarray, schedule: str, omega: float) -> np.ndarray:
    """Step size per updated pair: ``alpha / N^omega`` (visits, N >= 1), else ``alpha`` (constant,
    and linear, whose caller passes the decayed `alpha_at`)."""
    if schedule == "visits":
        return alpha / np.power(visits, omega)
    return np.full(visits.shape, alpha)


# --- policies (pure) --------------------------------------------------------------------------
def epsilon_greedy_probs(q_rows: np.ndarray, epsilon: float) -> np.ndarray:
    """[N, A] probabilities of the epsilon-greedy policy over rows of Q.

    ``pi(a|s) = eps / A + (1 - eps) * [a in argmax Q(s)] / |argmax Q(s)|``: the greedy mass is
    split evenly over tied actions, which is what `epsilon_greedy` samples.
    """
    n_actions = q_rows.shape[-1]
    best = q_rows == q_rows.max(axis=-1, keepdims=True)
    return epsilon / n_actions + (1.0 - epsilon) * best / best.sum(axis=-1, keepdims=True)


def epsilon_greedy(q_rows: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Sample from `epsilon_greedy_probs`: greedy with random tie-breaking, else uniform.

    Random tie-breaking matters while learning: with lowest-index ties every untried state
    would first try action 0, which biases exploration (Sutton & Barto break ties randomly).
    """
    n, n_actions = q_rows.shape
    # One draw per step (the per-call overhead dominates at these sizes): columns :A rank the
    # actions (the argmax of iid uniforms is a uniform action, over the tied ones a uniform
    # tied action); column A decides whether to explore.
    u = rng.random((n, n_actions + 1))
    scores = u[:, :n_actions]
    best = q_rows == q_rows.max(axis=1, keepdims=True)
    explore = u[:, n_actions] < epsilon
    return np.argmax(np.where(explore[:, None], scores, best * scores), axis=1)


def greedy(q_rows: np.ndarray) -> np.ndarray:
    """``argmax_a Q(s, a)``, ties to the lowest action index (deterministic evaluation)."""
    return np.argmax(q_rows, axis=1)


# --- TD targets (pure): the only place where the three algorithms differ --------------------
def q_learning_target(reward: np.ndarray, discount: np.ndarray, q_next: np.ndarray) -> np.ndarray:
    """``r + discount * max_a' Q(s', a')``; discount = gamma, or 0 where the episode terminated."""
    return reward + discount * q_next.max(axis=1)


def sarsa_target(
    reward: np.ndarray, discount: np.ndarray, q_next: np.ndarray, next_actions: np.ndarray
) -> np.ndarray:
    """``r + discount * Q(s', a')`` with a' the action the behaviour policy takes in s'."""
    return reward + discount * q_next[np.arange(q_next.shape[0]), next_actions]


def expected_sarsa_target(
    reward: np.ndarray, discount: np.ndarray, q_next: np.ndarray, epsilon: float
) -> np.ndarray:
    """``r + discount * sum_a' pi(a'|s') Q(s', a')``, pi epsilon-greedy (`epsilon_greedy_probs`)."""
    return reward + discount * (epsilon_greedy_probs(q_next, epsilon) * q_next).sum(axis=1)


def td_update(
    q: np.ndarray,
    visits: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    targets: np.ndarray,
    alpha: float,
    schedule: str,
    omega: float,
) -> tuple[np.ndarray, np.ndarray]:
    """In place: ``Q(s, a) += beta * (mean target of the batch's (s, a) - Q(s, a))``.

    `visits` ([S, A]) gains one per transition. A pair hit once gets the plain update, beta =
    alpha_sa. When k envs of a batch hit the same (s, a), their targets are averaged and
    ``beta = 1 - (1 - alpha_sa)^k``, the weight that k sequential updates with step alpha_sa
    toward that mean target would move by (alpha_sa at the first of the k visits): neither the
    last write silently wins nor does a crowded pair learn k times slower. Returns (TD errors,
    step sizes of the updated pairs), for logging.
    """
    n_actions = q.shape[1]
    flat_q, flat_visits = q.reshape(-1), visits.reshape(-1)  # views of the C-contiguous tables
    flat = states * n_actions + actions
    deltas = targets - flat_q[flat]
    if flat.shape[0] == 1:
        flat_visits[flat] += 1
        lr = step_sizes(alpha, flat_visits[flat], schedule, omega)
        flat_q[flat] += lr * deltas
        return deltas, lr
    pairs, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    mean_delta = np.bincount(inverse, weights=deltas) / counts
    lr = step_sizes(alpha, flat_visits[pairs] + 1, schedule, omega)
    flat_visits[pairs] += counts
    beta = 1.0 - np.power(1.0 - lr, counts)
    flat_q[pairs] += beta * mean_delta
    return deltas, beta


# --- the oracle and what the table looks like (shared with the planners) ---------------------
class GridView(NamedTuple):
    """How the states of a grid env map to cells, for images and the terminal view."""

    rows: int
    cols: int
    grid: list[str]  # map characters; S start, G goal, H trap/hole/cliff, # wall, . floor
    wall_mask: np.ndarray  # [S] cells that are never occupied (drawn dark grey)
    terminal_mask: np.ndarray  # [S] cells drawn with their map character instead of an arrow
    arrow_of_action: np.ndarray  # [A] render_grid arrow index (0 up, 1 right, 2 down, 3 left)


def grid_view_of(env: gym.Env[Any, Any]) -> GridView | None:
    """Grid layout of rltrain's gridworld and gymnasium's FrozenLake and CliffWalking, else None."""
    base = env.unwrapped
    from gymnasium.envs.toy_text.cliffwalking import CliffWalkingEnv
    from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv

    from rltrain.envs.gridworld import GridWorldEnv

    if isinstance(base, GridWorldEnv):
        return GridView(
            base.rows, base.cols, list(base.grid), base.wall_mask.copy(),
            base.terminal_states.copy(), np.arange(4),
        )
    if isinstance(base, FrozenLakeEnv):
        grid = ["".join(row) for row in np.asarray(base.desc).astype(str)]
        cells = np.array([list(row) for row in grid]).reshape(-1)
        # FrozenLake's actions are 0 left, 1 down, 2 right, 3 up.
        return GridView(
            len(grid), len(grid[0]), grid, np.zeros(cells.size, dtype=bool),
            (cells == "H") | (cells == "G"), np.array([3, 2, 1, 0]),
        )
    if isinstance(base, CliffWalkingEnv):
        rows, cols = base.shape
        cliff = np.asarray(base._cliff, dtype=bool).reshape(-1)
        cells = np.where(cliff, "H", ".")
        cells[int(base.start_state_index)] = "S"
        cells[rows * cols - 1] = "G"
        grid = ["".join(cells[r * cols : (r + 1) * cols]) for r in range(rows)]
        # The agent never stands on the cliff (falling sends it back to S), nor on G for long.
        return GridView(
            rows, cols, grid, np.zeros(cells.size, dtype=bool), (cells == "H") | (cells == "G"),
            np.arange(4),
        )
    return None


class Oracle(NamedTuple):
    """The exact solution of the env's MDP, to measure a table against."""

    model: TabularModel
    q_star: np.ndarray  # [S, A]
    v_star: np.ndarray  # [S]
    decision_mask: np.ndarray  # [S] reachable, non-terminal states: where choices matter


def oracle_of(model: TabularModel, env: gym.Env[Any, Any], gamma: float) -> Oracle | None:
    """Q* by value iteration on `model`; None when it does not converge (gamma = 1 on an env
    that never terminates, such as the traffic light: the values are unbounded)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = value_iteration(model, gamma, tol=1e-10, max_sweeps=20_000)
    if any(issubclass(w.category, RuntimeWarning) for w in caught):
        return None
    mask = decision_states(model, start_distribution_of(env))
    return Oracle(model, result.q, result.v, mask)


class TableInfo(NamedTuple):
    """What the learners and planners know about the env beyond its spaces."""

    model: TabularModel | None
    oracle: Oracle | None
    view: GridView | None
    state_names: tuple[str, ...] | None
    action_names: tuple[str, ...] | None


def table_info(env_cfg: Any, gamma: float) -> TableInfo:
    """Model, oracle, grid view and state/action names of one (unvectorized) copy of the env."""
    env = make_single_env(env_cfg)
    try:
        model = model_of(env)
        oracle = oracle_of(model, env, gamma) if model is not None else None
        state_names = action_names = None
        from rltrain.envs import traffic_light

        if isinstance(env.unwrapped, traffic_light.TrafficLightEnv):
            state_names, action_names = traffic_light.STATE_NAMES, traffic_light.ACTION_NAMES
        return TableInfo(model, oracle, grid_view_of(env), state_names, action_names)
    finally:
        env.close()


def _describe_space(space: gym.Space[Any]) -> str:
    if isinstance(space, gym.spaces.Box):
        kind = "image" if space.dtype == np.uint8 and len(space.shape) == 3 else "continuous"
        return f"{kind} observations of shape {tuple(space.shape)}"
    return f"{type(space).__name__} observations"


def check_discrete(algo: str, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
    """UserError unless both spaces are Discrete (a table needs one row per state)."""
    if not isinstance(obs_space, gym.spaces.Discrete):
        raise UserError(
            f"algo={algo} needs discrete observations (one table row per state) but this env "
            f"has {_describe_space(obs_space)}; use algo=dqn or algo=ppo for it"
        )
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UserError(
            f"algo={algo} needs discrete actions (one table column per action), not "
            f"{type(action_space).__name__}; use algo=ppo for continuous actions"
        )


def record_table(
    rec: Recorder, q: np.ndarray, info: TableInfo, images: bool, v: np.ndarray | None = None
) -> None:
    """Log-time diagnostics of a Q table (values/*, histograms, oracle distances, grid images).

    V = max_a Q and the advantage A = Q - V (<= 0) unless the caller passes its own V. Means,
    maxima and histograms are taken over the decision states when the model is known (walls,
    terminals and unreachable states would only dilute them), else over all states.
    """
    v = q.max(axis=1) if v is None else v
    oracle = info.oracle
    mask = oracle.decision_mask if oracle is not None else np.ones(q.shape[0], dtype=bool)
    if not mask.any():
        mask = np.ones(q.shape[0], dtype=bool)
    q_in, v_in = q[mask], v[mask]
    advantage = q_in - v_in[:, None]
    rec.scalar("values/q_mean", float(q_in.mean()))
    rec.scalar("values/q_max", float(q_in.max()))
    rec.scalar("values/v_mean", float(v_in.mean()))
    rec.scalar("values/advantage_mean", float(advantage.mean()))
    rec.scalar("values/advantage_std", float(advantage.std()))
    rec.histogram("values/q", q_in.reshape(-1))
    rec.histogram("values/v", v_in)
    rec.histogram("values/advantage", advantage.reshape(-1))
    if oracle is not None:
        rec.scalar("values/q_error_vs_optimal", q_error_vs_optimal(q, oracle.q_star, mask))
        rec.scalar("values/policy_agreement", policy_agreement(q, oracle.q_star, mask))
    view = info.view
    if images and view is not None:
        shown_v = np.where(view.terminal_mask, 0.0, v)  # V of a terminal state is 0
        walls = view.wall_mask
        rec.image(
            "values/v_heatmap", render_grid.value_heatmap(shown_v, view.rows, view.cols, walls)
        )
        arrows = view.arrow_of_action[greedy(q)]
        rec.image(
            "policy/greedy_arrows",
            render_grid.policy_arrows(
                arrows, view.rows, view.cols, walls, view.terminal_mask, grid=view.grid
            ),
        )
        if oracle is not None:
            error = np.where(mask, np.abs(shown_v - oracle.v_star), 0.0)
            rec.image(
                "values/v_error_vs_optimal",
                render_grid.error_heatmap(error, view.rows, view.cols, walls),
            )


MAX_TABLE_STATES = 64  # above this the terminal view prints a summary instead of a table


def table_text(q: np.ndarray, info: TableInfo, v: np.ndarray | None = None) -> str:
    """The terminal view: V and the greedy policy as grids for grid envs, a Q table for small
    envs, and a one-line summary for big ones."""
    v = q.max(axis=1) if v is None else v
    view = info.view
    if view is not None:
        shown_v = np.where(view.terminal_mask, 0.0, v)
        arrows = view.arrow_of_action[greedy(q)]
        values = render_grid.text_values(shown_v, view.rows, view.cols, view.wall_mask)
        policy = render_grid.text_policy(
            arrows, view.rows, view.cols, view.wall_mask, view.terminal_mask, grid=view.grid
        )
        return f"V = max_a Q(s, a):\n{values}\n\ngreedy policy:\n{policy}"
    n_states, n_actions = q.shape
    if n_states > MAX_TABLE_STATES:
        return (
            f"Q table: {n_states} states x {n_actions} actions (too many to print); "
            f"V mean {v.mean():.3f}, max {v.max():.3f}"
        )
    states = info.state_names or tuple(f"s{s}" for s in range(n_states))
    actions = info.action_names or tuple(f"a{a}" for a in range(n_actions))
    best = greedy(q)
    width = max(8, *(len(a) + 1 for a in actions))
    label = max(5, *(len(s) for s in states))
    lines = ["Q".ljust(label) + "".join(a.rjust(width) for a in actions) + "   greedy"]
    for s in range(n_states):
        cells = "".join(f"{q[s, a]:.3f}".rjust(width) for a in range(n_actions))
        lines.append(states[s].ljust(label) + cells + f"   {actions[best[s]]}")
    return "\n".join(lines)


# --- the learner ------------------------------------------------------------------------------
class TabularTD:
    """Q-learning / SARSA / expected SARSA on N >= 1 vectorized envs; `cfg.name` picks the target.

    One iterate() = one step of every env and one TD update per transition.
    """

    algo_name = "q_learning"

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_discrete(cls.algo_name, obs_space, action_space)

    def __init__(self, cfg: TDConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env = ctx.env
        obs_space, action_space = env.single_observation_space, env.single_action_space
        check_discrete(cfg.name, obs_space, action_space)
        assert isinstance(obs_space, gym.spaces.Discrete)
        assert isinstance(action_space, gym.spaces.Discrete)
        self.num_envs = env.num_envs
        self.n_states, self.n_actions = int(obs_space.n), int(action_space.n)
        self.info = table_info(ctx.cfg.env, cfg.gamma)

        # float64 tables, C-contiguous so td_update's flat views alias them.
        self.q = np.full((self.n_states, self.n_actions), float(cfg.initial_q))
        if self.info.model is not None:
            # V = Q = 0 in terminal states by definition; nothing ever bootstraps from them
            # (termination cuts the target), so this only keeps V maps and means honest.
            self.q[self.info.model.terminal_states] = 0.0
        self.visits = np.zeros((self.n_states, self.n_actions), dtype=np.int64)
        self.updates = 0  # TD updates so far (transitions)

        self.obs = env.reset(seed=ctx.cfg.seed).astype(np.int64)
        self.actions = self._first_actions(self.obs)
        # Log-window accumulators (written at diagnostics(), not per step).
        self._abs_td_sum = 0.0
        self._lr_sum = 0.0
        self._window = 0

    @property
    def epsilon(self) -> float:
        c = self.cfg
        return epsilon_at(
            self.ctx.progress, c.epsilon_start, c.epsilon_end, c.epsilon_fraction,
            c.epsilon_schedule,
        )

    def _first_actions(self, obs: np.ndarray) -> np.ndarray:
        """Actions in the first states of new episodes: uniform with random_first_action."""
        if self.cfg.random_first_action:
            return np.asarray(self.ctx.rng.integers(self.n_actions, size=obs.shape[0]))
        return epsilon_greedy(self.q[obs], self.epsilon, self.ctx.rng)

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        rows = self.q[np.asarray(obs, dtype=np.int64)]
        return greedy(rows) if deterministic else epsilon_greedy(rows, self.epsilon, self.ctx.rng)

    def iterate(self) -> int:
        cfg, rng = self.cfg, self.ctx.rng
        eps = self.epsilon
        states, actions = self.obs, self.actions
        step = self.ctx.env.step(actions)
        next_obs = step.obs.astype(np.int64)  # where an episode ended: the reset state
        final_obs = step.final_obs.astype(np.int64)  # the true successor s'
        # The actions taken next are chosen before the update, as in S&B's SARSA (for
        # Q-learning this reads Q one update earlier, which is immaterial).
        next_actions = epsilon_greedy(self.q[next_obs], eps, rng)
        if cfg.random_first_action:
            restarted = np.flatnonzero(step.terminated | step.truncated)
            if restarted.size:
                next_actions[restarted] = rng.integers(self.n_actions, size=restarted.size)

        q_next = self.q[final_obs]
        # A termination cuts the bootstrap; a time-limit truncation keeps it.
        discount = cfg.gamma * (~step.terminated)
        reward = step.reward.astype(np.float64)
        if cfg.name == "sarsa":
            boot_actions = next_actions
            cut = np.flatnonzero(step.truncated & ~step.terminated)
            if cut.size:
                # a' in the final state of a truncated episode is never taken (the env resets),
                # so sample it from the same behaviour policy.
                boot_actions = next_actions.copy()
                boot_actions[cut] = epsilon_greedy(q_next[cut], eps, rng)
            targets = sarsa_target(reward, discount, q_next, boot_actions)
        elif cfg.name == "expected_sarsa":
            targets = expected_sarsa_target(reward, discount, q_next, eps)
        else:
            targets = q_learning_target(reward, discount, q_next)

        deltas, lr = td_update(
            self.q, self.visits, states, actions, targets,
            alpha_at(self.ctx.progress, cfg.alpha, cfg.alpha_end, cfg.alpha_schedule),
            cfg.alpha_schedule, cfg.alpha_omega,
        )
        self.updates += self.num_envs
        self._abs_td_sum += float(np.abs(deltas).sum())
        self._lr_sum += float(lr.mean()) * self.num_envs
        self._window += self.num_envs
        self.obs, self.actions = next_obs, next_actions
        return self.num_envs

    def diagnostics(self) -> None:
        rec = self.ctx.recorder
        rec.scalar("charts/epsilon", self.epsilon)
        if self._window:
            rec.scalar("charts/learning_rate", self._lr_sum / self._window)
            rec.scalar("values/td_error", self._abs_td_sum / self._window)
            self._abs_td_sum = self._lr_sum = 0.0
            self._window = 0
        record_table(rec, self.q, self.info, images=self.ctx.cfg.logger.images)

    def terminal_view(self) -> str:
        return table_text(self.q, self.info)

    def state_dict(self) -> dict[str, Any]:
        return {
            "q": torch.from_numpy(self.q.copy()),
            "visits": torch.from_numpy(self.visits.copy()),
            "updates": self.updates,
            # the states the envs are in and the actions already chosen for them: with the
            # envs' own state (saved by the loop) a resumed run continues the episodes exactly
            "obs": torch.from_numpy(self.obs.copy()),
            "actions": torch.from_numpy(np.asarray(self.actions, dtype=np.int64)),
            "window": [self._abs_td_sum, self._lr_sum, self._window],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        q = state["q"].numpy()
        if q.shape != self.q.shape:
            raise UserError(
                f"checkpoint Q table is {tuple(q.shape)} but this env needs {self.q.shape}"
            )
        # In place: the flat views used by td_update must keep aliasing the tables.
        self.q[...] = q
        self.visits[...] = state["visits"].numpy()
        self.updates = int(state["updates"])
        if "obs" in state and envs_restored(self.ctx.env):
            self.obs = state["obs"].numpy().astype(np.int64)
            self.actions = state["actions"].numpy().astype(np.int64)
            self._abs_td_sum, self._lr_sum = (float(x) for x in state["window"][:2])
            self._window = int(state["window"][2])
        else:
            # The epsilon schedule is a function of the loop's step counter, which the loop
            # restores; the env is freshly reset, so choose its first actions again.
            self.actions = self._first_actions(self.obs)


class QLearning(TabularTD):
    algo_name = "q_learning"


class Sarsa(TabularTD):
    algo_name = "sarsa"


class ExpectedSarsa(TabularTD):
    algo_name = "expected_sarsa"
