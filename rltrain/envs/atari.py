"""Atari (ALE) environments: DeepMind-style preprocessing, two vector backends, raw game scores.

`make_atari_vec_env(cfg, num_envs, seed, training)` gives a `VecEnv` whose observations are uint8
[N, frame_stack, screen_size, screen_size]. Two backends with identical semantics (a test steps
both on the same actions and compares every observation, reward and flag):

- "native": `ale_py.vector_env.AtariVectorEnv` (C++ threads, no Python per env), adapted by
  `NativeAtariVecEnv`;
- "sync" / "async": gymnasium `SyncVectorEnv` / `AsyncVectorEnv` over `ALE/<Game>-v5` with
  `frameskip=1` and the wrappers of `rltrain.envs.atari_wrappers`.

Semantics (both backends, ale-py 0.12.1):
- reset: `reset_game`; FIRE for one frame if FIRE is in the action set; then no-op frames, so that
  the number of start frames (FIRE included) is max(fire, u), u ~ Uniform{0..noop_max}:
  1..noop_max for FIRE games (1 has twice the mass of the others), 0..noop_max otherwise.
  The frame stack starts as [0, .., 0, f0].
- step: the action repeated for `frame_skip` frames (sticky with `repeat_action_probability`,
  Machado et al. 2018, applied by the ALE to every frame, start frames included), max of the last
  two frames, grayscale, INTER_AREA resize to screen_size, pushed on a stack of `frame_stack`.
  A game over, or the `max_episode_frames` limit (counted after the start frames), stops the skip
  loop early; the observation of such a step keeps the previous pooled frame.
- terminated: game over; in training also a lost life (0 < lives < lives before the step), after
  which the game simply goes on: no emulator reset, no FIRE, frame stack kept.
  truncated: the frame limit (108,000 frames = 30 min, Machado et al. 2018), never with terminated.
- reward: the raw frame-skip sum; in training its sign (Mnih et al. 2015).
- `pop_episodes()`: whole games (all lives), raw score, length in agent steps.

What differs from other wrapper sets, and why:
- SB3/baselines wrappers take 1..noop_max no-ops, then FIRE and action 2, and press FIRE again
  after each lost life in training. gymnasium's AtariPreprocessing takes 1..noop_max no-ops, no
  FIRE, and with terminal_on_life_loss=True resets the whole game at every lost life.
  The native env's reset procedure is fixed in C++ (FIRE first, then no-ops) and it cannot press
  FIRE after a lost life: that would need extra frames for one env outside a batched step, or
  silently replacing the agent's next action. So both backends follow the native procedure; in
  Breakout the agent itself must press FIRE to serve again after a lost life (as in evaluation).
- Native `episodic_life=True` (ale-py 0.12.1) resets the *whole game* at every lost life, so every
  episode is the first life of a fresh game and no whole-game score exists; that is why it ends many
  more episodes than the gymnasium wrappers over the same random steps. Native `life_loss_info=True`
  keeps the game going but then `terminated` mixes lives and games. We therefore run the native env
  with both off and with `reward_clipping=False`, and derive life-loss terminals (from
  `info["lives"]`) and clipped rewards in `NativeAtariVecEnv`, which also keeps the raw score for
  `pop_episodes`.
- Native no-ops: ale-py draws u ~ Uniform{0..noop_max-1} (minus one for FIRE), so we pass it
  `noop_max + 1`. Its seeds: env i is seeded with seed + i on `reset(seed)`; gymnasium envs too,
  but the seed feeds different RNGs, so equal seeds do not give equal no-op counts or sticky draws
  across backends (only the distributions match).
- The ALE's own `max_num_frames_per_episode` is left unset in the gymnasium envs: it would count
  the start frames too; `AtariGame` counts the limit exactly as the native env does.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain.config.envs import AtariConfig
from rltrain.envs.vec import GymVecEnv, Transition, VecEnv
from rltrain.errors import UserError

BACKENDS = ("native", "sync", "async")
ALE_FPS = 60  # the Atari 2600 renders 60 frames per second


def _require_ale() -> Any:
    try:
        import ale_py
    except ImportError:
        raise UserError("env=atari needs ale-py: pip install 'rltrain[atari]'") from None
    return ale_py


@functools.cache
def _game_ids() -> dict[str, str]:
    """snake_case ROM name -> registered single-player gymnasium id (`ALE/SpaceInvaders-v5`)."""
    ale_py = _require_ale()
    gym.register_envs(ale_py)
    camel = {k[4:-3].lower(): k for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5")}
    games = {}
    for rom in ale_py.roms.get_all_rom_ids():
        env_id = camel.get(rom.replace("_", ""))
        if env_id is not None:  # the few multi-player-only ROMs have no single-player id
            games[rom] = env_id
    return games


def atari_games() -> list[str]:
    """Every game `env.game` accepts (snake_case ALE ROM names)."""
    return sorted(_game_ids())


def resolve_game(game: str) -> str:
    """`space_invaders`, `SpaceInvaders` or `ALE/SpaceInvaders-v5` -> `space_invaders`."""
    games = _game_ids()
    key = game.removeprefix("ALE/").split("-v")[0].replace("_", "").replace("-", "").lower()
    for rom in games:
        if rom.replace("_", "") == key:
            return rom
    close = difflib.get_close_matches(game.lower(), list(games), n=3, cutoff=0.5)
    known = ", ".join(sorted(games))
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known games: {known}"
    raise UserError(f"env.game={game} is not an ALE game{hint}")


MAX_SCREEN_SIZE = 420


def validate_atari_config(cfg: AtariConfig) -> str:
    """Checks the config (one-line UserError) and returns the ROM name of the game."""
    if cfg.backend not in BACKENDS:
        raise UserError(f"env.backend={cfg.backend} is not known; use one of {', '.join(BACKENDS)}")
    checks = [
        (cfg.frame_skip >= 1, f"env.frame_skip={cfg.frame_skip} must be at least 1"),
        (cfg.frame_stack >= 1, f"env.frame_stack={cfg.frame_stack} must be at least 1"),
        (cfg.screen_size >= 8, f"env.screen_size={cfg.screen_size} must be at least 8"),
        # the frames are resized from the 210 x 160 screen: a larger size adds no detail, only
        # memory (a replay of 1M frames at 84 x 84 is already 7 GB)
        (
            cfg.screen_size <= MAX_SCREEN_SIZE,
            f"env.screen_size={cfg.screen_size} must be at most {MAX_SCREEN_SIZE} (the ALE screen "
            "is 210 x 160; 84 is the usual size)",
        ),
        (cfg.noop_max >= 0, f"env.noop_max={cfg.noop_max} must be 0 or more"),
        (cfg.num_envs >= 1, f"env.num_envs={cfg.num_envs} must be at least 1"),
        (
            cfg.max_episode_frames >= 1,
            f"env.max_episode_frames={cfg.max_episode_frames} must be at least 1",
        ),
        (
            0.0 <= cfg.repeat_action_probability <= 1.0,
            f"env.repeat_action_probability={cfg.repeat_action_probability} must be in [0, 1]",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return resolve_game(cfg.game)


# ---------------------------------------------------------------------------------------------
# gymnasium backends


def make_atari_env(
    cfg: AtariConfig, training: bool, record: bool = False
) -> gym.Env[np.ndarray, int]:
    """One preprocessed game (see the module docstring), the thunk of the gymnasium backends."""
    from gymnasium.wrappers import RecordEpisodeStatistics

    from rltrain.envs.atari_wrappers import (
        AtariGame,
        LifeLossTerminal,
        RecordGameFrames,
        SignReward,
    )

    rom = validate_atari_config(cfg)
    env = gym.make(
        _game_ids()[rom],
        frameskip=1,  # AtariGame skips; v5 ids would otherwise skip 4 themselves (16 in all)
        repeat_action_probability=cfg.repeat_action_probability,
        full_action_space=cfg.full_action_space,
        max_num_frames_per_episode=None,  # AtariGame counts the limit like the native env
        render_mode="rgb_array" if record else None,
        disable_env_checker=True,
    )
    env = AtariGame(
        env,
        frame_skip=cfg.frame_skip,
        frame_stack=cfg.frame_stack,
        screen_size=cfg.screen_size,
        noop_max=cfg.noop_max,
        max_episode_frames=cfg.max_episode_frames,
        full_action_space=cfg.full_action_space,
    )
    if record:
        env = RecordGameFrames(env)
    env = RecordEpisodeStatistics(env)  # inside the life/clip wrappers: whole games, raw score
    if training and cfg.terminal_on_life_loss:
        env = LifeLossTerminal(env)
    if training and cfg.clip_rewards:
        env = SignReward(env)
    return env


class AtariGymVecEnv(GymVecEnv):
    """`GymVecEnv` whose first `reset()` without a seed uses the seed given to the factory."""

    def __init__(self, env: gym.vector.VectorEnv, seed: int) -> None:
        super().__init__(env, episode_info=True)
        self._first_seed: int | None = seed

    def reset(self, seed: int | None = None) -> np.ndarray:
        seed = self._first_seed if seed is None else seed
        self._first_seed = None
        return super().reset(seed=seed)


class AtariEvalEnv(AtariGymVecEnv):
    """One env playing whole games with raw rewards; with `record=True` it also keeps frames.

    `pop_videos()` returns, for each game finished since the last call, its full-resolution RGB
    frames [T + 1, 210, 160, 3] (one per agent step, plus the reset frame); write them with
    `rltrain.envs.video.write_mp4(path, frames, fps=env.fps)` for real-time playback.
    """

    def __init__(self, env: gym.vector.SyncVectorEnv, seed: int, fps: int) -> None:
        super().__init__(env, seed)
        self.fps = fps

    def pop_videos(self) -> list[np.ndarray]:
        videos: list[np.ndarray] = []
        for sub_env in self.unwrapped_envs:
            videos.extend(sub_env.get_wrapper_attr("pop_finished")())
        return videos


def make_atari_eval_env(cfg: AtariConfig, seed: int, record: bool = False) -> AtariEvalEnv:
    """Single-env evaluation form (gymnasium sync backend, same semantics as every backend)."""
    _require_ale()
    validate_atari_config(cfg)
    vector = gym.vector.SyncVectorEnv(
        [functools.partial(make_atari_env, cfg, False, record)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    vector.action_space.seed(seed)
    return AtariEvalEnv(vector, seed, fps=max(1, round(ALE_FPS / cfg.frame_skip)))


# ---------------------------------------------------------------------------------------------
# native backend


class NativeAtariVecEnv:
    """`VecEnv` over `ale_py.vector_env.AtariVectorEnv` (SAME_STEP autoreset).

    The C++ env does reset no-ops/FIRE, frame skip, max-pool, resize and stacking; it runs with
    episodic_life/life_loss_info/reward_clipping off, so its `terminated` is a real game over and
    its rewards are raw. Life-loss terminals and reward signs are added here (vectorized), and raw
    scores summed for `pop_episodes`. `last_info` holds the native info of the last reset/step
    (lives, episode_frame_number, ...).
    """

    def __init__(self, cfg: AtariConfig, num_envs: int, seed: int, training: bool) -> None:
        ale_py = _require_ale()
        from ale_py.vector_env import AtariVectorEnv

        rom = validate_atari_config(cfg)
        self.env = AtariVectorEnv(
            rom,
            num_envs,
            max_num_frames_per_episode=cfg.max_episode_frames,
            repeat_action_probability=cfg.repeat_action_probability,
            full_action_space=cfg.full_action_space,
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
            img_height=cfg.screen_size,
            img_width=cfg.screen_size,
            grayscale=True,
            stack_num=cfg.frame_stack,
            frameskip=cfg.frame_skip,
            maxpool=True,
            noop_max=cfg.noop_max + 1,  # ale-py draws Uniform{0..noop_max-1}
            episodic_life=False,  # would reset the whole game at every lost life
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=True,
        )
        del ale_py
        self.num_envs = num_envs
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space
        self.single_action_space.seed(seed)
        self.life_loss = training and cfg.terminal_on_life_loss
        self.clip = training and cfg.clip_rewards
        self.last_info: dict[str, np.ndarray] = {}
        self._first_seed: int | None = seed
        self._lives = np.zeros(num_envs, dtype=np.int64)
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._done_returns: list[np.ndarray] = []
        self._done_lengths: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> np.ndarray:
        seed = self._first_seed if seed is None else seed
        self._first_seed = None
        obs, info = self.env.reset(seed=seed)
        self.last_info = info
        self._lives[:] = info["lives"]
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return np.array(obs)

    def step(self, actions: np.ndarray) -> Transition:
        obs, raw, game_over, truncated, info = self.env.step(np.asarray(actions, dtype=np.int64))
        self.last_info = info
        obs = np.array(obs)  # own the memory: the C++ side may reuse its buffer
        raw = np.asarray(raw, dtype=np.float64)
        game_over = np.asarray(game_over, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = game_over | truncated
        lives = np.asarray(info["lives"], dtype=np.int64)  # after the autoreset where done
        terminated = game_over
        if self.life_loss:
            terminated = game_over | (~done & (lives > 0) & (lives < self._lives))
        self._lives[:] = lives
        final_obs = obs
        if done.any():
            final_obs = obs.copy()
            final_obs[done] = np.asarray(info["final_obs"])[done]
        self._returns += raw
        self._lengths += 1
        if done.any():
            self._done_returns.append(self._returns[done].copy())
            self._done_lengths.append(self._lengths[done].copy())
            self._returns[done] = 0.0
            self._lengths[done] = 0
        reward = np.sign(raw) if self.clip else raw
        return Transition(obs, reward.astype(np.float32), terminated, truncated, final_obs)

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._done_returns:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        returns = np.concatenate(self._done_returns)
        lengths = np.concatenate(self._done_lengths)
        self._done_returns.clear()
        self._done_lengths.clear()
        return returns, lengths

    def state_dict(self) -> None:
        """The emulators' state lives in ale-py's C++ threads: a resume starts fresh games."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        self.env.close()


# ---------------------------------------------------------------------------------------------
# factory


def make_atari_vec_env(cfg: AtariConfig, num_envs: int, seed: int, training: bool) -> VecEnv:
    """`num_envs` Atari games on `cfg.backend`; training=True adds life-loss terminals and clipping.

    training=False (evaluation) gives whole games with raw rewards. The first `reset()` without a
    seed uses `seed` (env i gets seed + i).
    """
    _require_ale()
    validate_atari_config(cfg)
    if num_envs < 1:
        raise UserError(f"num_envs={num_envs} must be at least 1")
    if cfg.backend == "native":
        return NativeAtariVecEnv(cfg, num_envs, seed, training)
    thunks = [functools.partial(make_atari_env, cfg, training) for _ in range(num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    vector: gym.vector.VectorEnv
    if cfg.backend == "async":
        vector = gym.vector.AsyncVectorEnv(thunks, autoreset_mode=mode)
    else:
        vector = gym.vector.SyncVectorEnv(thunks, autoreset_mode=mode)
    vector.action_space.seed(seed)
    return AtariGymVecEnv(vector, seed)
