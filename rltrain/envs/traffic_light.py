"""A two-state traffic light: the smallest MDP with a closed-form optimum.

State 0 = red, 1 = green; action 0 = stop, 1 = forward. Going forward on green pays
``green_reward``, on red ``red_penalty``; stopping pays 0. After the action the light
switches with probability ``switch_prob``. The episode never terminates; it is truncated
after ``max_steps`` steps. ``P`` is exact and ``step()`` samples from it.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces

from rltrain.config.envs import TrafficLightConfig
from rltrain.errors import UserError

RED, GREEN = 0, 1
STOP, FORWARD = 0, 1
STATE_NAMES: tuple[str, ...] = ("red", "green")
ACTION_NAMES: tuple[str, ...] = ("stop", "forward")

Transition = tuple[float, int, float, bool]


class TrafficLightEnv(gymnasium.Env[int, int]):
    """Red/green light; see the module docstring. ``P`` is in gymnasium toy-text format."""

    # Discrete is typed over np.int64 while observations here are plain ints (like toy-text);
    # narrowing the declared type lets callers use `.n` with type checking.
    observation_space: spaces.Discrete  # type: ignore[assignment]
    action_space: spaces.Discrete  # type: ignore[assignment]
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        switch_prob: float = 0.3,
        green_reward: float = 1.0,
        red_penalty: float = -5.0,
        max_steps: int = 50,
        render_mode: str | None = None,
    ) -> None:
        if not 0.0 <= float(switch_prob) <= 1.0:
            raise UserError(f"env.switch_prob must be in [0, 1], got {switch_prob}")
        if int(max_steps) < 1:
            raise UserError(f"env.max_steps must be >= 1, got {max_steps}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(f"traffic_light render_mode {render_mode!r} is not supported; use ansi")
        self.switch_prob = float(switch_prob)
        self.green_reward = float(green_reward)
        self.red_penalty = float(red_penalty)
        self.max_steps = int(max_steps)
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(2)
        self.action_space = spaces.Discrete(2)
        # Start uniformly on red or green (toy-text name for the start distribution).
        self.initial_state_distrib: np.ndarray = np.array([0.5, 0.5])

        rewards = {
            (RED, STOP): 0.0,
            (RED, FORWARD): self.red_penalty,
            (GREEN, STOP): 0.0,
            (GREEN, FORWARD): self.green_reward,
        }
        self.P: dict[int, dict[int, list[Transition]]] = {}
        for s in (RED, GREEN):
            self.P[s] = {}
            for a in (STOP, FORWARD):
                outcomes = [(1.0 - self.switch_prob, s), (self.switch_prob, 1 - s)]
                self.P[s][a] = [(p, ns, rewards[s, a], False) for p, ns in outcomes if p > 0.0]

        self.s: int = RED
        self.lastaction: int | None = None
        self._elapsed = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.s = int(self.np_random.integers(2))
        self.lastaction = None
        self._elapsed = 0
        return self.s, {"prob": 0.5}

    def step(self, action: int) -> tuple[int, SupportsFloat, bool, bool, dict[str, Any]]:
        a = int(action)
        outcomes = self.P[self.s][a]
        # Inverse-CDF sampling of the (at most two) outcomes listed in P.
        u = self.np_random.random()
        i = 0 if len(outcomes) == 1 or u < outcomes[0][0] else 1
        prob, ns, reward, terminated = outcomes[i]
        self.s = ns
        self.lastaction = a
        self._elapsed += 1
        truncated = self._elapsed >= self.max_steps
        return ns, reward, terminated, truncated, {"prob": prob}

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        last = ""
        if self.lastaction is not None:
            last = f" (last action: {ACTION_NAMES[self.lastaction]})"
        return f"light: {STATE_NAMES[self.s]}{last}\n"


def make_traffic_light(cfg: TrafficLightConfig, render_mode: str | None = None) -> TrafficLightEnv:
    """Build one TrafficLightEnv from its config group."""
    return TrafficLightEnv(
        switch_prob=cfg.switch_prob,
        green_reward=cfg.green_reward,
        red_penalty=cfg.red_penalty,
        max_steps=cfg.max_steps,
        render_mode=render_mode,
    )


if "rltrain/TrafficLight-v0" not in gymnasium.registry:
    gymnasium.register(
        "rltrain/TrafficLight-v0", entry_point="rltrain.envs.traffic_light:TrafficLightEnv"
    )
