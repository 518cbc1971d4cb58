"""Atari env layer: both backends step for step identical, DeepMind preprocessing, raw scores."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.atari
pytest.importorskip("ale_py")

import cv2  # noqa: E402
from ale_py import Action, ALEInterface, LoggerMode, roms  # noqa: E402

from rltrain.config.envs import AtariConfig  # noqa: E402
from rltrain.envs.atari import (  # noqa: E402
    NativeAtariVecEnv,
    make_atari_env,
    make_atari_eval_env,
    make_atari_vec_env,
    resolve_game,
    validate_atari_config,
)
from rltrain.envs.vec import VecEnv  # noqa: E402
from rltrain.envs.video import read_video_frames, write_mp4  # noqa: E402
from rltrain.errors import UserError  # noqa: E402


def det_cfg(**kw: object) -> AtariConfig:
    """Deterministic emulation: no sticky actions, no random no-ops."""
    base: dict[str, object] = {"noop_max": 0, "repeat_action_probability": 0.0}
    base.update(kw)
    return AtariConfig(**base)  # type: ignore[arg-type]


def both(cfg: AtariConfig, num_envs: int, training: bool) -> tuple[VecEnv, VecEnv]:
    cfg_native = AtariConfig(**{**cfg.__dict__, "backend": "native"})
    cfg_sync = AtariConfig(**{**cfg.__dict__, "backend": "sync"})
    return (
        make_atari_vec_env(cfg_native, num_envs, seed=0, training=training),
        make_atari_vec_env(cfg_sync, num_envs, seed=0, training=training),
    )


# ------------------------------------------------------------------------------------------ config


def test_game_names_and_validation() -> None:
    assert resolve_game("space_invaders") == "space_invaders"
    assert resolve_game("SpaceInvaders") == "space_invaders"
    assert resolve_game("ALE/MsPacman-v5") == "ms_pacman"
    with pytest.raises(UserError, match="did you mean breakout"):
        validate_atari_config(AtariConfig(game="brekout"))
    bad: list[dict[str, object]] = [
        {"frame_stack": 0},
        {"frame_skip": 0},
        {"screen_size": 4},
        {"noop_max": -1},
        {"repeat_action_probability": 1.5},
        {"repeat_action_probability": -0.1},
        {"backend": "envpool"},
    ]
    for kw in bad:
        with pytest.raises(UserError) as err:
            validate_atari_config(AtariConfig(**kw))  # type: ignore[arg-type]
        assert "\n" not in str(err.value)
        assert next(iter(kw)) in str(err.value)


def test_missing_ale_py_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from rltrain.envs import atari

    monkeypatch.setitem(sys.modules, "ale_py", None)  # makes `import ale_py` raise ImportError
    with pytest.raises(UserError, match=r"pip install 'rltrain\[atari\]'"):
        atari._require_ale()


@pytest.mark.parametrize("backend", ["native", "sync", "async"])
def test_observation_shape_dtype_and_spaces(backend: str) -> None:
    cfg = AtariConfig(backend=backend, frame_stack=3, screen_size=64)
    env = make_atari_vec_env(cfg, num_envs=2, seed=0, training=True)
    try:
        assert env.single_observation_space.shape == (3, 64, 64)
        assert env.single_action_space.n == 4  # type: ignore[attr-defined]
        obs = env.reset(seed=1)
        assert obs.shape == (2, 3, 64, 64) and obs.dtype == np.uint8
        assert not obs[:, :2].any() and obs[:, 2].any()  # zero-filled stack after a real reset
        tr = env.step(np.array([1, 2]))
        assert tr.obs.shape == (2, 3, 64, 64) and tr.obs.dtype == np.uint8
        assert tr.reward.dtype == np.float32 and tr.reward.shape == (2,)
        assert tr.terminated.dtype == bool and tr.truncated.dtype == bool
    finally:
        env.close()


# ------------------------------------------------------------------------------ backend equivalence


@pytest.mark.parametrize(
    ("training", "game", "max_frames"),
    [(True, "breakout", 108_000), (False, "breakout", 108_000), (True, "pong", 203)],
)
def test_native_and_gymnasium_backends_are_identical(
    training: bool, game: str, max_frames: int
) -> None:
    """Same actions -> bit-identical obs, final_obs, rewards, flags and whole-game scores.

    Both resize with OpenCV INTER_AREA and follow the same per-frame algorithm, so no tolerance
    is needed. max_frames=203 is not a multiple of the frame skip: it checks cut-short steps.
    """
    native, gym_env = both(det_cfg(game=game, max_episode_frames=max_frames), 2, training)
    rng = np.random.default_rng(7)
    n_actions = native.single_action_space.n  # type: ignore[attr-defined]
    counts = {"terminated": 0, "truncated": 0}
    games_native, games_gym = [], []
    try:
        assert np.array_equal(native.reset(), gym_env.reset())
        for _ in range(450):
            actions = rng.integers(0, n_actions, size=2)
            a, b = native.step(actions), gym_env.step(actions)
            for field in a._fields:
                assert np.array_equal(getattr(a, field), getattr(b, field)), field
            counts["terminated"] += int(a.terminated.sum())
            counts["truncated"] += int(a.truncated.sum())
            games_native.append(native.pop_episodes())
            games_gym.append(gym_env.pop_episodes())
    finally:
        native.close()
        gym_env.close()
    ret_n = np.concatenate([r for r, _ in games_native])
    len_n = np.concatenate([n for _, n in games_native])
    np.testing.assert_array_equal(ret_n, np.concatenate([r for r, _ in games_gym]))
    np.testing.assert_array_equal(len_n, np.concatenate([n for _, n in games_gym]))
    assert len(ret_n) >= 2  # whole games did end inside the window
    if max_frames == 203:
        assert counts["truncated"] >= 2 and np.all(len_n == 51)  # ceil(203 / 4) agent steps
    elif training:
        assert counts["terminated"] > len(ret_n)  # life losses counted as terminals
    else:
        assert counts["terminated"] == len(ret_n)  # eval: terminal == game over


def test_frame_skip_max_pool_matches_manual_ale() -> None:
    """obs[-1] == INTER_AREA resize of max(frame 3, frame 4) of a raw ALE stepped frame by frame."""
    ale = ALEInterface()
    ale.setLoggerMode(LoggerMode.Error)
    ale.setFloat("repeat_action_probability", 0.0)
    rom = roms.get_rom_path("breakout")
    assert rom is not None
    ale.loadROM(rom)
    ale.reset_game()
    ale.act(Action.FIRE)  # FIRE on reset, noop_max=0
    action_set = ale.getMinimalActionSet()
    native, gym_env = both(det_cfg(), 1, training=False)
    rng = np.random.default_rng(3)
    pooling_mattered = 0
    try:
        native.reset()
        gym_env.reset()
        for _ in range(120):
            a = int(rng.integers(0, 4))
            reward, frames = 0, []
            for _ in range(4):
                reward += ale.act(action_set[a])
                frames.append(ale.getScreenGrayscale())
            pooled = np.maximum(frames[-2], frames[-1])
            expected = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
            last_only = cv2.resize(frames[-1], (84, 84), interpolation=cv2.INTER_AREA)
            pooling_mattered += int(not np.array_equal(expected, last_only))
            for env in (native, gym_env):
                tr = env.step(np.array([a]))
                assert np.array_equal(tr.obs[0, -1], expected)
                assert tr.reward[0] == reward
            if ale.game_over():
                break
    finally:
        native.close()
        gym_env.close()
    assert pooling_mattered > 10  # the test can tell pooled from unpooled frames


# ---------------------------------------------------------------------------------- reset procedure


def _start_frames_gym(game: str, noop_max: int, resets: int) -> np.ndarray:
    env = make_atari_env(AtariConfig(game=game, noop_max=noop_max), training=False)
    ale = env.unwrapped.ale  # type: ignore[attr-defined]
    env.reset(seed=0)  # seed once: a seeded reset reloads the ROM (slow)
    counts = []
    for _ in range(resets):
        env.reset()
        counts.append(ale.getEpisodeFrameNumber())
    env.close()
    return np.array(counts)


def _start_frames_native(game: str, noop_max: int, resets: int) -> np.ndarray:
    env = NativeAtariVecEnv(AtariConfig(game=game, noop_max=noop_max), 4, 0, training=False)
    env.reset(seed=0)  # each env loads its ROM again on a seeded reset: few envs, seed once
    counts = []
    for _ in range(resets // 4):
        env.reset()
        counts.append(env.last_info["episode_frame_number"])
    env.close()
    return np.concatenate(counts)


@pytest.mark.parametrize("backend", ["native", "sync"])
def test_start_frames_fire_then_noops(backend: str) -> None:
    """Breakout (has FIRE): start frames = max(1, u), u ~ U{0..noop_max} -> 1..noop_max.

    P(1) = 2 / (noop_max + 1) = 1/3 and P(k) = 1/6 for k = 2..5 (noop_max=5). With 160 resets the
    frequencies have std 0.037 and 0.029: the bounds below are 3 std.
    """
    sample = _start_frames_gym if backend == "sync" else _start_frames_native
    frames = sample("breakout", 5, 160)
    assert frames.min() == 1 and frames.max() == 5
    assert abs(np.mean(frames == 1) - 1 / 3) < 0.11
    assert abs(np.mean(frames == 5) - 1 / 6) < 0.09
    # Freeway has no FIRE: start frames = u ~ U{0..noop_max}, zero included.
    frames = sample("freeway", 3, 48)
    assert set(np.unique(frames)) == {0, 1, 2, 3}


@pytest.mark.parametrize("backend", ["native", "sync"])
def test_fire_on_reset_serves_the_ball_but_not_after_a_lost_life(backend: str) -> None:
    env = make_atari_vec_env(det_cfg(backend=backend), 1, seed=0, training=True)
    env.reset()
    noop = np.zeros(1, dtype=np.int64)
    steps_to_first_terminal = None
    for t in range(300):
        tr = env.step(noop)
        if tr.terminated[0]:
            steps_to_first_terminal = t
            break
    # The agent never pressed FIRE, yet a ball was served and missed: FIRE on reset.
    assert steps_to_first_terminal is not None
    # After the lost life nobody serves: NOOPs alone never lose another life.
    assert not any(env.step(noop).terminated[0] for _ in range(300))
    env.close()


# ----------------------------------------------------------------------------- training vs eval


@pytest.mark.parametrize("backend", ["native", "sync"])
@pytest.mark.parametrize("game", ["breakout", "space_invaders"])
def test_life_loss_and_clipping_only_in_training(backend: str, game: str) -> None:
    """Same actions in a training and an eval env: the emulation is identical (a lost life does not
    reset anything), training sees sign(reward) and a terminal per life, eval raw whole games, and
    both report the same raw game scores."""
    cfg = det_cfg(backend=backend, game=game)
    train = make_atari_vec_env(cfg, 1, seed=0, training=True)
    evaluate = make_atari_vec_env(cfg, 1, seed=0, training=False)
    rng = np.random.default_rng(11)
    n_actions = train.single_action_space.n  # type: ignore[attr-defined]
    assert np.array_equal(train.reset(), evaluate.reset())
    train_terms = eval_terms = 0
    raw_rewards = []
    games_train: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    games_eval = games_train
    for _ in range(2000):
        a = rng.integers(0, n_actions, size=1)
        tr, ev = train.step(a), evaluate.step(a)
        assert np.array_equal(tr.obs, ev.obs)
        assert tr.reward[0] == np.sign(ev.reward[0])
        raw_rewards.append(ev.reward[0])
        train_terms += int(tr.terminated[0])
        eval_terms += int(ev.terminated[0])
        games_train, games_eval = train.pop_episodes(), evaluate.pop_episodes()
        if len(games_eval[0]):
            break
    train.close()
    evaluate.close()
    assert len(games_eval[0]) == 1 and eval_terms == 1
    np.testing.assert_array_equal(games_train[0], games_eval[0])
    np.testing.assert_array_equal(games_train[1], games_eval[1])
    assert games_eval[0][0] == sum(raw_rewards)  # raw score of the whole game
    assert games_eval[1][0] == len(raw_rewards)  # length in agent steps
    lives = 5 if game == "breakout" else 3
    assert train_terms == lives  # lives - 1 life losses + the game over
    if game == "space_invaders":
        assert max(raw_rewards) > 1  # aliens score 5..30 raw; training saw only 1
    else:
        assert set(raw_rewards) <= {0.0, 1.0, 4.0, 7.0}  # Breakout bricks


def test_first_reset_uses_factory_seed_and_seeds_differ() -> None:
    cfg = AtariConfig(backend="native")  # sticky actions and random no-ops on
    runs = []
    for seed in (5, 5, 6):
        env = make_atari_vec_env(cfg, 2, seed=seed, training=True)
        obs = [env.reset()]
        rng = np.random.default_rng(0)
        obs += [env.step(rng.integers(0, 4, size=2)).obs for _ in range(30)]
        runs.append(np.stack(obs))
        env.close()
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


# -------------------------------------------------------------------------------------- video


def test_video_roundtrip(tmp_path: Path) -> None:
    ramp = np.linspace(0, 255, 160, dtype=np.uint8)[None, :, None]
    frames = [np.broadcast_to(ramp + 5 * i, (210, 160, 3)).copy() for i in range(9)]
    path = write_mp4(tmp_path / "v" / "game.mp4", frames, fps=15)
    back = read_video_frames(path)
    assert back.shape == (9, 210, 160, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - np.stack(frames)).mean() < 3  # lossy H.264
    first = read_video_frames(path, max_frames=4)  # decodes only the start of a long video
    assert first.shape == (4, 210, 160, 3) and np.array_equal(first, back[:4])
    odd = read_video_frames(write_mp4(tmp_path / "odd.mp4", [np.zeros((33, 45, 3), np.uint8)] * 2))
    assert odd.shape == (2, 34, 46, 3)  # odd sides padded for yuv420p
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "empty.mp4", [])


def test_eval_env_records_whole_games_at_full_resolution() -> None:
    env = make_atari_eval_env(det_cfg(), seed=0, record=True)
    assert env.num_envs == 1 and env.fps == 15
    env.reset()
    rng = np.random.default_rng(2)
    returns, lengths = np.zeros(0), np.zeros(0, dtype=np.int64)
    terminals = 0
    for _ in range(2000):
        tr = env.step(rng.integers(0, 4, size=1))
        terminals += int(tr.terminated[0])
        returns, lengths = env.pop_episodes()
        if len(returns):
            break
    videos = env.pop_videos()
    env.close()
    assert terminals == 1  # eval: one terminal per whole game (5 lives)
    assert len(videos) == 1
    assert videos[0].shape == (lengths[0] + 1, 210, 160, 3) and videos[0].dtype == np.uint8
    assert env.pop_videos() == []
