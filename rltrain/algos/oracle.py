"""The exact optimum of a tabular env and how a table is shown (TD learners and planners alike).

- `table_info`: the env's model (`env.unwrapped.P`), Q* and V* by value iteration on it (the
  oracle), its grid layout and state/action names;
- `record_table`: values/* scalars and histograms of a Q table, its distance to Q*, and the grid
  images (V heat map, greedy arrows, |V - V*|);
- `table_text`: the terminal view `rltrain eval` prints.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from rltrain import tags
from rltrain.algos.value_estimates import record_histograms
from rltrain.blocks.dp import (
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
from rltrain.envs.grid_view import GridView, grid_view_of
from rltrain.errors import UserError
from rltrain.logging import Recorder


def greedy(q_rows: np.ndarray) -> np.ndarray:
    """``argmax_a Q(s, a)``, ties to the lowest action index (deterministic evaluation)."""
    return np.argmax(q_rows, axis=1)


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
    rec.scalar(tags.Q_MEAN, float(q_in.mean()))
    rec.scalar(tags.Q_MAX, float(q_in.max()))
    rec.scalar(tags.V_MEAN, float(v_in.mean()))
    rec.scalar(tags.ADVANTAGE_MEAN, float(advantage.mean()))
    rec.scalar(tags.ADVANTAGE_STD, float(advantage.std()))
    record_histograms(rec, q=q_in, v=v_in, advantage=advantage)
    if oracle is not None:
        rec.scalar(tags.Q_ERROR_VS_OPTIMAL, q_error_vs_optimal(q, oracle.q_star, mask))
        rec.scalar(tags.POLICY_AGREEMENT, policy_agreement(q, oracle.q_star, mask))
    view = info.view
    if images and view is not None:
        shown_v = np.where(view.terminal_mask, 0.0, v)  # V of a terminal state is 0
        walls = view.wall_mask
        rec.image(
            tags.V_HEATMAP,
            render_grid.value_heatmap(shown_v, view.rows, view.cols, walls, grid=view.grid),
        )
        arrows = view.arrow_of_action[greedy(q)]
        rec.image(
            tags.GREEDY_ARROWS,
            render_grid.policy_arrows(
                arrows, view.rows, view.cols, walls, view.terminal_mask, grid=view.grid
            ),
        )
        if oracle is not None:
            error = np.where(mask, np.abs(shown_v - oracle.v_star), 0.0)
            rec.image(
                tags.V_ERROR_VS_OPTIMAL,
                render_grid.error_heatmap(error, view.rows, view.cols, walls, grid=view.grid),
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
