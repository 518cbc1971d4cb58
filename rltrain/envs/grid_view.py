"""How the states of a grid env map to cells, for images and the terminal view: rltrain's
gridworld and gymnasium's FrozenLake and CliffWalking."""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np


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

    from rltrain.envs.gridworld import GridWorldEnv  # looked up per call: tests reload it

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
