"""A small, exactly known grid world for tabular RL.

The transition model ``P`` is written out once in gymnasium's toy-text format and ``step()``
samples from exactly that table, so dynamic programming on ``P`` (rltrain.blocks.dp) gives
the true optimum of the environment the agent plays in.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces

from rltrain.config.envs import GridWorldConfig
from rltrain.errors import UserError

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
# (row, col) offset of each action, indexed by the action number above.
MOVES: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))
ACTION_NAMES: tuple[str, ...] = ("up", "right", "down", "left")

START, GOAL, TRAP, WALL, FLOOR = "S", "G", "H", "#", "."
CELL_CHARS = START + GOAL + TRAP + WALL + FLOOR

LAYOUTS: dict[str, str] = {
    # Start top-left, goal bottom-right, a trap right beside the goal: the shortest path
    # along the bottom row is blocked, so the optimal route comes down the right column.
    "4x4": "S.../..../..../..HG",
    # A 4x12 cliff walk after Sutton & Barto (2018), Example 6.6: start bottom-left, goal
    # bottom-right, the bottom row between them all cliff. Use it with env.trap_reward=-100
    # env.step_reward=-1. Unlike S&B (where falling sends the agent back to the start
    # without ending the episode) a trap here *terminates* the episode; for the exact S&B
    # example use `env=gym env.id=CliffWalking-v1`.
    "cliff": "............/............/............/SHHHHHHHHHHG",
    # An 8x8 maze with walls and one trap next to the goal; the goal is reachable
    # (checked when the layout is parsed).
    "maze8": "S.#...../.##.##.#/....#.../##.##.#./...#..#./.#...##./.#.#..../...#.#HG",
}


def parse_layout(layout: str) -> list[str]:
    """Return the grid rows of a named layout or map string; raise UserError when it is invalid.

    A map string has rows separated by '/' or newlines; blank rows and surrounding spaces
    are ignored so that triple-quoted maps work.
    """
    text = LAYOUTS.get(layout)
    if text is None:
        # Layout names are lowercase words; anything with a row separator or a cell character
        # is read as a map, so that a typo inside a map is reported as such.
        looks_like_map = "/" in layout or "\n" in layout or any(ch in CELL_CHARS for ch in layout)
        if not looks_like_map:
            known = ", ".join(LAYOUTS)
            raise UserError(
                f"env.layout: unknown layout {layout!r}; known layouts: {known}, "
                "or a map string like 'S..#/..H./...G' (S start, G goal, H trap, # wall, . floor)"
            )
        text = layout
    rows = [row.strip() for row in text.replace("\n", "/").split("/")]
    rows = [row for row in rows if row]
    if not rows:
        raise UserError("env.layout: the map is empty; give rows like 'S..#/..H./...G'")
    for i, row in enumerate(rows):
        for ch in row:
            if ch not in CELL_CHARS:
                raise UserError(
                    f"env.layout: unknown character {ch!r} in row {i} ({row!r}); "
                    "use S (start), G (goal), H (trap), # (wall), . (floor)"
                )
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise UserError(
                f"env.layout: row {i} ({row!r}) has {len(row)} cells but row 0 has {width}; "
                "all rows must have the same length"
            )
    n_start = sum(row.count(START) for row in rows)
    if n_start == 0:
        raise UserError("env.layout: the map has no start cell 'S'; put exactly one S")
    if n_start > 1:
        raise UserError(f"env.layout: the map has {n_start} start cells 'S'; exactly one is needed")
    if not any(GOAL in row for row in rows):
        raise UserError("env.layout: the map has no goal cell 'G'; put at least one G")
    if not _goal_reachable(rows):
        raise UserError(
            "env.layout: no goal G can be reached from the start S without crossing a trap H "
            "or a wall #"
        )
    return rows


def _goal_reachable(rows: list[str]) -> bool:
    """Breadth-first search from S over floor cells (traps end the episode, walls block)."""
    n_rows, n_cols = len(rows), len(rows[0])
    start = next((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == START)
    seen = {start}
    frontier = [start]
    while frontier:
        nxt: list[tuple[int, int]] = []
        for r, c in frontier:
            for dr, dc in MOVES:
                rr, cc = r + dr, c + dc
                if not (0 <= rr < n_rows and 0 <= cc < n_cols) or (rr, cc) in seen:
                    continue
                ch = rows[rr][cc]
                if ch == GOAL:
                    return True
                if ch in (WALL, TRAP):
                    continue
                seen.add((rr, cc))
                nxt.append((rr, cc))
        frontier = nxt
    return False


Transition = tuple[float, int, float, bool]


class GridWorldEnv(gymnasium.Env[int, int]):
    """Grid world with walls, traps, a goal and optional slip.

    State ``s = row * cols + col`` (wall cells are states that can never be reached);
    actions 0=up, 1=right, 2=down, 3=left. Moving into a wall or off the grid stays put.
    With probability ``slip`` the move goes to one of the two perpendicular directions
    (``slip / 2`` each). Entering G pays ``goal_reward`` and entering H pays ``trap_reward``,
    both terminate; any other step pays ``step_reward``. ``truncated`` is True on step
    ``max_steps`` unless the episode terminated on that step.

    ``P[s][a] = [(prob, next_state, reward, terminated), ...]`` (gymnasium toy-text format,
    one entry per distinct next state) is the exact model; G and H are absorbing:
    ``P[s][a] = [(1.0, s, 0.0, True)]``. Wall states self-loop with zero reward.
    """

    # Discrete is typed over np.int64 while observations here are plain ints (like toy-text);
    # narrowing the declared type lets callers use `.n` with type checking.
    observation_space: spaces.Discrete  # type: ignore[assignment]
    action_space: spaces.Discrete  # type: ignore[assignment]
    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        layout: str = "4x4",
        slip: float = 0.0,
        step_reward: float = 0.0,
        goal_reward: float = 1.0,
        trap_reward: float = -1.0,
        max_steps: int = 100,
        render_mode: str | None = None,
        random_start: bool = False,
    ) -> None:
        if not 0.0 <= float(slip) <= 1.0:
            raise UserError(f"env.slip must be in [0, 1], got {slip}")
        if int(max_steps) < 1:
            raise UserError(f"env.max_steps must be >= 1, got {max_steps}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = ", ".join(self.metadata["render_modes"])
            raise UserError(f"gridworld render_mode {render_mode!r} is not supported; use {modes}")
        self.grid: list[str] = parse_layout(layout)
        self.rows: int = len(self.grid)
        self.cols: int = len(self.grid[0])
        self.slip = float(slip)
        self.step_reward = float(step_reward)
        self.goal_reward = float(goal_reward)
        self.trap_reward = float(trap_reward)
        self.max_steps = int(max_steps)
        self.render_mode = render_mode

        n_states = self.rows * self.cols
        cells = np.array([list(row) for row in self.grid]).reshape(-1)
        self.wall_mask: np.ndarray = cells == WALL
        # Bool mask over states (like TabularModel.terminal_states): the G and H cells.
        self.terminal_states: np.ndarray = (cells == GOAL) | (cells == TRAP)
        self.start_state: int = int(np.flatnonzero(cells == START)[0])
        self.random_start = bool(random_start)
        # Toy-text name for the start distribution (FrozenLake, CliffWalking and Taxi use it).
        self.initial_state_distrib: np.ndarray = np.zeros(n_states)
        if self.random_start:
            starts = self._reachable_from_start()
            self.initial_state_distrib[starts] = 1.0 / len(starts)
        else:
            self.initial_state_distrib[self.start_state] = 1.0

        self.observation_space = spaces.Discrete(n_states)
        self.action_space = spaces.Discrete(len(MOVES))
        self.P: dict[int, dict[int, list[Transition]]] = self._build_model(cells)

        # step() samples from these arrays, which are P flattened per (s, a): the same
        # numbers, so the samples follow P exactly.
        self._cum_probs: list[list[np.ndarray]] = []
        self._outcomes: list[list[list[Transition]]] = []
        for s in range(n_states):
            self._cum_probs.append([np.cumsum([t[0] for t in self.P[s][a]]) for a in range(4)])
            self._outcomes.append([self.P[s][a] for a in range(4)])

        self.s: int = self.start_state
        self.lastaction: int | None = None
        self._elapsed = 0

    # ---------------------------------------------------------------- model
    def _move(self, s: int, action: int) -> int:
        """Deterministic result of trying `action` in state `s` (walls and edges stay put)."""
        r, c = divmod(s, self.cols)
        dr, dc = MOVES[action]
        rr, cc = r + dr, c + dc
        if not (0 <= rr < self.rows and 0 <= cc < self.cols) or self.grid[rr][cc] == WALL:
            return s
        return rr * self.cols + cc

    def _reachable_from_start(self) -> list[int]:
        """Non-terminal cells reachable from S without passing a goal or trap (any slip reaches
        only cells some intended move reaches too, so this holds for every slip)."""
        seen, frontier = {self.start_state}, [self.start_state]
        while frontier:
            s = frontier.pop()
            for action in range(len(MOVES)):
                ns = self._move(s, action)
                if ns not in seen and not self.terminal_states[ns]:
                    seen.add(ns)
                    frontier.append(ns)
        return sorted(seen)

    def _entry_reward(self, cell: str) -> tuple[float, bool]:
        if cell == GOAL:
            return self.goal_reward, True
        if cell == TRAP:
            return self.trap_reward, True
        return self.step_reward, False

    def _build_model(self, cells: np.ndarray) -> dict[int, dict[int, list[Transition]]]:
        P: dict[int, dict[int, list[Transition]]] = {}
        for s, cell in enumerate(cells):
            P[s] = {}
            for a in range(len(MOVES)):
                if cell in (GOAL, TRAP):
                    P[s][a] = [(1.0, s, 0.0, True)]
                    continue
                if cell == WALL:
                    P[s][a] = [(1.0, s, 0.0, False)]
                    continue
                # Intended move, then the two perpendicular ones (a+1 and a-1 mod 4).
                weights = (
                    (a, 1.0 - self.slip),
                    ((a + 1) % 4, self.slip / 2),
                    ((a - 1) % 4, self.slip / 2),
                )
                merged: dict[int, float] = {}
                for move, p in weights:
                    if p > 0.0:
                        ns = self._move(s, move)
                        merged[ns] = merged.get(ns, 0.0) + p
                outcomes: list[Transition] = []
                for ns, p in merged.items():
                    reward, terminated = self._entry_reward(str(cells[ns]))
                    outcomes.append((p, ns, reward, terminated))
                P[s][a] = outcomes
        return P

    # ---------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        if self.random_start:
            cells = self.observation_space.n
            self.s = int(self.np_random.choice(cells, p=self.initial_state_distrib))
        else:
            # No draw: the random stream of fixed-start runs stays as it was.
            self.s = self.start_state
        self.lastaction = None
        self._elapsed = 0
        return self.s, {"prob": 1.0}

    def step(self, action: int) -> tuple[int, SupportsFloat, bool, bool, dict[str, Any]]:
        a = int(action)
        cum = self._cum_probs[self.s][a]
        # Inverse-CDF sampling of the categorical P[s][a]; min() guards round-off in cum[-1].
        i = min(int(np.searchsorted(cum, self.np_random.random(), side="right")), len(cum) - 1)
        prob, ns, reward, terminated = self._outcomes[self.s][a][i]
        self.s = ns
        self.lastaction = a
        self._elapsed += 1
        truncated = self._elapsed >= self.max_steps and not terminated
        return ns, reward, terminated, truncated, {"prob": prob}

    def render(self) -> str | np.ndarray | None:  # type: ignore[override]
        if self.render_mode == "ansi":
            return self._render_text()
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        return None

    def _render_text(self) -> str:
        r, c = divmod(self.s, self.cols)
        lines = []
        for i, row in enumerate(self.grid):
            lines.append(row[:c] + "A" + row[c + 1 :] if i == r else row)
        header = f"({ACTION_NAMES[self.lastaction]})\n" if self.lastaction is not None else ""
        return header + "\n".join(lines) + "\n"

    def _render_rgb(self, cell: int = 16) -> np.ndarray:
        palette = {
            FLOOR: (235, 235, 235),
            START: (190, 215, 245),
            GOAL: (90, 190, 90),
            TRAP: (220, 80, 70),
            WALL: (70, 70, 70),
        }
        colors = np.array([[palette[ch] for ch in row] for row in self.grid], dtype=np.uint8)
        img = np.repeat(np.repeat(colors, cell, axis=0), cell, axis=1)
        # Thin grid lines so neighbouring floor cells stay distinguishable.
        img[::cell, :, :] = 200
        img[:, ::cell, :] = 200
        # The agent: a dark disc in its cell.
        r, c = divmod(self.s, self.cols)
        yy, xx = np.mgrid[0:cell, 0:cell]
        centre = (cell - 1) / 2
        disc = (yy - centre) ** 2 + (xx - centre) ** 2 <= (cell * 0.3) ** 2
        img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell][disc] = (30, 40, 140)
        return img


def make_gridworld(cfg: GridWorldConfig, render_mode: str | None = None) -> GridWorldEnv:
    """Build one GridWorldEnv from its config group."""
    return GridWorldEnv(
        layout=cfg.layout,
        slip=cfg.slip,
        step_reward=cfg.step_reward,
        goal_reward=cfg.goal_reward,
        trap_reward=cfg.trap_reward,
        max_steps=cfg.max_steps,
        render_mode=render_mode,
        random_start=cfg.random_start,
    )


# Registering twice raises a warning in gymnasium; the guard keeps re-imports quiet.
if "rltrain/GridWorld-v0" not in gymnasium.registry:
    gymnasium.register("rltrain/GridWorld-v0", entry_point="rltrain.envs.gridworld:GridWorldEnv")
