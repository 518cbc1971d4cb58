"""Gymnasium wrappers that reproduce, frame for frame, what ale-py's native vector env does.

`AtariGame` drives the ALE of a `frameskip=1` `ALE/<Game>-v5` env directly (no per-frame
`env.step`, which would fetch an RGB screen every frame) and follows the algorithm of ale-py
0.12's native `PreprocessedEnv` step for step, so that the gymnasium backends and the native
backend give identical observations, rewards and flags. The full list of semantics (and where they
differ from other wrapper sets) is in the docstring of `rltrain.envs.atari`.

Wrapper order for one env (innermost first):
    AtariGame -> [RecordGameFrames] -> RecordEpisodeStatistics -> [LifeLossTerminal] -> [SignReward]
RecordEpisodeStatistics sits inside the life-loss and clipping wrappers, so it sees whole games and
raw scores; `GymVecEnv(episode_info=True)` reports those.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np
from ale_py import Action

Obs = np.ndarray


class AtariGame(gym.Wrapper[Obs, int, Any, Any]):
    """Reset procedure, frame skip with max-pool, 84x84 grayscale and frame stack; whole games.

    reset: ALE `reset_game`; FIRE for one frame if FIRE is in the action set; then
        `max(0, u - fire)` NOOP frames with u ~ Uniform{0..noop_max}. So the number of start frames
        (FIRE included) is max(fire, u): 1..noop_max for FIRE games, 0..noop_max for the others.
        The frame stack is zero-filled and the first processed frame pushed: [0, .., 0, f0].
    step: repeat the action for `frame_skip` frames, stopping early at game over or when
        `max_episode_frames` frames (counted after the start frames) have been played. The last
        two frames are max-pooled (Mnih et al. 2015: some sprites flicker every other frame),
        resized with INTER_AREA and pushed on the stack. A step cut short keeps the previous
        pooled frame (both backends do this).
    reward: raw sum over the skipped frames. terminated: game over. truncated: frame limit hit.
    info: {"lives": ale.lives()}.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        frame_skip: int,
        frame_stack: int,
        screen_size: int,
        noop_max: int,
        max_episode_frames: int,
        full_action_space: bool,
    ) -> None:
        super().__init__(env)
        self.ale = env.unwrapped.ale  # type: ignore[attr-defined]
        ale = self.ale
        self._actions: list[Action] = list(
            ale.getLegalActionSet() if full_action_space else ale.getMinimalActionSet()
        )
        self.has_fire = Action.FIRE in self._actions
        self.frame_skip = frame_skip
        self.noop_max = noop_max
        self.max_episode_frames = max_episode_frames
        self._size = (screen_size, screen_size)
        height, width = self.ale.getScreenDims()
        # raw[1] holds the second-to-last frame of a step, raw[0] the last (ale-py's layout).
        self._raw = np.zeros((2, height, width), dtype=np.uint8)
        self._stack = np.zeros((frame_stack, screen_size, screen_size), dtype=np.uint8)
        self._elapsed = 0
        self.start_frames = 0  # FIRE + no-op frames of the last reset, for tests and stats
        self.action_space = gym.spaces.Discrete(len(self._actions))  # type: ignore[assignment]
        self.observation_space = gym.spaces.Box(0, 255, self._stack.shape, dtype=np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        self.env.reset(seed=seed, options=options)  # seeds ALE + np_random, then reset_game()
        ale = self.ale
        fire = int(self.has_fire)
        if fire:
            ale.act(Action.FIRE)
        noops = int(self.np_random.integers(0, self.noop_max + 1)) - fire
        for _ in range(noops):
            ale.act(Action.NOOP)
            if ale.game_over(with_truncation=False):
                ale.reset_game()
        self.start_frames = fire + max(noops, 0)
        ale.getScreenGrayscale(self._raw[0])
        self._raw[1] = 0
        self._stack[:] = 0
        self._push_frame()
        self._elapsed = 0
        return self._stack.copy(), {"lives": ale.lives()}

    def step(self, action: int) -> tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]:
        ale = self.ale
        ale_action = self._actions[int(action)]
        reward = 0
        game_over = False
        for skip_id in range(self.frame_skip, 0, -1):
            reward += ale.act(ale_action)
            game_over = ale.game_over(with_truncation=False)
            self._elapsed += 1
            if game_over or self._elapsed >= self.max_episode_frames:
                break
            if skip_id <= 2:
                ale.getScreenGrayscale(self._raw[skip_id - 1])
        self._push_frame()
        truncated = self._elapsed >= self.max_episode_frames and not game_over
        return self._stack.copy(), float(reward), game_over, truncated, {"lives": ale.lives()}

    def _push_frame(self) -> None:
        # In place, like ale-py: a step cut short before its last two frames pools this again.
        np.maximum(self._raw[0], self._raw[1], out=self._raw[0])
        self._stack[:-1] = self._stack[1:]
        self._stack[-1] = cv2.resize(self._raw[0], self._size, interpolation=cv2.INTER_AREA)

    def get_action_meanings(self) -> list[str]:
        return [a.name for a in self._actions]


class LifeLossTerminal(gym.Wrapper[Obs, int, Obs, int]):
    """Training only: a lost life ends the episode, but the game goes on (Mnih et al. 2015).

    `terminated` is set when 0 < lives < lives before the step (the rule of the standard
    EpisodicLifeEnv). The vector env then calls `reset()`, which only hands back the current
    observation: no emulator reset, no no-ops, no FIRE, frame stack kept. Only a real game over
    (or truncation) resets the game.
    """

    def __init__(self, env: gym.Env[Obs, int]) -> None:
        super().__init__(env)
        self._lives = 0
        self._life_lost = False
        self._last: tuple[Obs, dict[str, Any]] | None = None

    def step(self, action: int) -> tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = int(info["lives"])
        self._life_lost = not (terminated or truncated) and 0 < lives < self._lives
        self._lives = lives
        self._last = (obs, info)
        return obs, reward, terminated or self._life_lost, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        if self._life_lost and self._last is not None:
            # Called by the vector env's autoreset right after the life-loss step.
            self._life_lost = False
            return self._last
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = int(info["lives"])
        self._life_lost = False
        return obs, info


class SignReward(gym.RewardWrapper[Obs, int]):
    """Training only: reward -> sign(reward) of the summed frame-skip reward (Mnih et al. 2015)."""

    def reward(self, reward: SupportsFloat) -> SupportsFloat:
        return float(np.sign(float(reward)))


class RecordGameFrames(gym.Wrapper[Obs, int, Obs, int]):
    """Keeps the full-resolution RGB screen (210x160x3) after reset and after every agent step.

    When a game ends, its frames move to `finished` as one uint8 array [T + 1, H, W, 3], T being the
    game's length in agent steps. Memory: about 100 kB per frame (a 10k-step game is 1 GB).
    """

    def __init__(self, env: gym.Env[Obs, int]) -> None:
        super().__init__(env)
        self._ale = env.unwrapped.ale  # type: ignore[attr-defined]
        self._frames: list[np.ndarray] = []
        self.finished: list[np.ndarray] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._frames = [self._ale.getScreenRGB()]
        return obs, info

    def step(self, action: int) -> tuple[Obs, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(self._ale.getScreenRGB())
        if terminated or truncated:
            self.finished.append(np.stack(self._frames))
            self._frames = []
        return obs, reward, terminated, truncated, info

    def pop_finished(self) -> list[np.ndarray]:
        out, self.finished = self.finished, []
        return out
