"""Replay buffers: n-step targets by hand, frame dedup against a naive buffer, PER statistics."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rltrain.blocks.buffers import (
    FrameReplayBuffer,
    PrioritizedReplay,
    ReplayBuffer,
    ReplaySample,
    make_replay_buffer,
)

# --------------------------------------------------------------------------------------------
# ReplayBuffer: n-step by hand. Two envs, obs = one float that names the state.
# env 0: terminated at t=2 (final obs 3, reset obs 100), truncated at t=4 (final obs 102, reset
#        obs 200). env 1: terminated at t=0 (final obs 501, reset obs 600), then no episode end.
# Columns: obs, reward, terminated, truncated, next_obs (the true successor).
ENV0 = [
    (0, 1, 0, 0, 1),
    (1, 2, 0, 0, 2),
    (2, 3, 1, 0, 3),
    (100, 4, 0, 0, 101),
    (101, 5, 0, 1, 102),
    (200, 6, 0, 0, 201),
    (201, 7, 0, 0, 202),
    (202, 8, 0, 0, 203),
    (203, 9, 0, 0, 204),
]
ENV1 = [(500, 1, 1, 0, 501)] + [(599 + t, 1, 0, 0, 600 + t) for t in range(1, 9)]
RESET_OBS = {100.0, 200.0, 600.0}

# n = 3, gamma = 0.5. (reward sum, discount gamma^m (1 - term), next_obs) per start step t.
EXPECTED_ENV0 = [
    (1 + 0.5 * 2 + 0.25 * 3, 0.0, 3),  # window 0..2 ends with the termination: no bootstrap
    (2 + 0.5 * 3, 0.0, 3),
    (3, 0.0, 3),
    (4 + 0.5 * 5, 0.25, 102),  # stops at the truncation t=4: bootstraps from the final obs 102
    (5, 0.5, 102),  # (never from 200, the next episode's first obs)
    (6 + 0.5 * 7 + 0.25 * 8, 0.125, 203),  # a full window inside an episode
    (7 + 0.5 * 8 + 0.25 * 9, 0.125, 204),
    (8 + 0.5 * 9, 0.25, 204),  # truncated to what exists: newest written step is t=8
    (9, 0.5, 204),
]
EXPECTED_ENV1 = [(1, 0.0, 501)] + [
    (1.75, 0.125, 603 + t) for t in range(0, 6)
] + [(1.5, 0.25, 608), (1.0, 0.5, 608)]  # fmt: skip


def fill_hand_buffer(buf: ReplayBuffer | PrioritizedReplay) -> None:
    for (o0, r0, te0, tr0, n0), (o1, r1, te1, tr1, n1) in zip(ENV0, ENV1, strict=True):
        buf.add(
            obs=np.array([[o0], [o1]], dtype=np.float32),
            actions=np.array([o0 % 3, o1 % 3]),
            rewards=np.array([r0, r1], dtype=np.float32),
            terminated=np.array([te0, te1], dtype=bool),
            truncated=np.array([tr0, tr1], dtype=bool),
            next_obs=np.array([[n0], [n1]], dtype=np.float32),
        )


def make_hand_buffer(capacity: int, n_steps: int = 3) -> ReplayBuffer:
    return ReplayBuffer(capacity, 2, (1,), np.float32, (), np.int64, "cpu", n_steps, 0.5)


def check_rows(sample: ReplaySample, expected: Mapping[int, tuple[float, float, float]]) -> None:
    for i, flat in enumerate(sample.indices.tolist()):
        reward, discount, next_obs = expected[flat]
        assert sample.rewards[i].item() == pytest.approx(reward)
        assert sample.discounts[i].item() == pytest.approx(discount)
        assert sample.next_obs[i, 0].item() == next_obs


def test_nstep_hand_computed_termination_truncation_autoreset() -> None:
    buf = make_hand_buffer(capacity=40)
    fill_hand_buffer(buf)
    assert len(buf) == 18
    # flat index = row * num_envs + env; no wrap yet, so row = t
    expected = {2 * t: e for t, e in enumerate(EXPECTED_ENV0)}
    expected |= {2 * t + 1: e for t, e in enumerate(EXPECTED_ENV1)}
    sample = buf.gather(np.arange(18))
    check_rows(sample, expected)
    assert sample.obs[:, 0].tolist() == [v for pair in zip(ENV0, ENV1, strict=True) for v in
                                         (pair[0][0], pair[1][0])]  # fmt: skip
    assert sample.actions.dtype == torch.int64 and sample.rewards.dtype == torch.float32
    assert torch.equal(sample.weights, torch.ones(18))
    # uniform sampling hits every transition and only with these targets
    rng = np.random.default_rng(0)
    sample = buf.sample(500, rng)
    assert set(sample.indices.tolist()) == set(range(18))
    check_rows(sample, expected)
    assert not RESET_OBS & set(sample.next_obs[:, 0].tolist())


def test_nstep_one_is_plain_transition() -> None:
    buf = make_hand_buffer(capacity=40, n_steps=1)
    fill_hand_buffer(buf)
    s = buf.gather(np.arange(0, 18, 2))  # env 0
    assert s.rewards.tolist() == [row[1] for row in ENV0]
    assert s.discounts.tolist() == [0.5 * (1 - row[2]) for row in ENV0]
    assert s.next_obs[:, 0].tolist() == [row[4] for row in ENV0]


def test_ring_wraparound_never_reads_overwritten_rows() -> None:
    # 4 rows per env: after 9 steps rows hold t = 8, 5, 6, 7 (row = t % 4)
    buf = make_hand_buffer(capacity=8)
    fill_hand_buffer(buf)
    assert len(buf) == 8
    expected = {2 * (t % 4): EXPECTED_ENV0[t] for t in range(5, 9)}
    expected |= {2 * (t % 4) + 1: EXPECTED_ENV1[t] for t in range(5, 9)}
    check_rows(buf.gather(np.arange(8)), expected)
    check_rows(buf.sample(200, np.random.default_rng(1)), expected)


def test_state_dict_roundtrip_weights_only() -> None:
    buf = make_hand_buffer(capacity=8)
    fill_hand_buffer(buf)
    blob = io.BytesIO()
    torch.save(buf.state_dict(), blob)
    blob.seek(0)
    other = make_hand_buffer(capacity=8)
    other.load_state_dict(torch.load(blob, weights_only=True))
    assert len(other) == len(buf)
    for a, b in zip(other.gather(np.arange(8)), buf.gather(np.arange(8)), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_empty_and_invalid_index() -> None:
    buf = make_hand_buffer(capacity=40)
    with pytest.raises(ValueError):
        buf.sample(4, np.random.default_rng(0))
    fill_hand_buffer(buf)
    with pytest.raises(IndexError):
        buf.gather(np.array([18]))  # row 9 was never written


# --------------------------------------------------------------------------------------------
# FrameReplayBuffer against a naive buffer that stores full stacks.

K, H, W = 4, 3, 3


def frame_stream(num_envs: int, steps: int, seed: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Vector-env-like stream of stacked frames with SAME_STEP autoreset semantics.

    Episodes of 1..20 steps (many shorter than K); reset observations hold K arbitrary frames
    (zeros + one frame, one frame repeated, or unrelated random frames) since the buffer must
    not assume any padding; some episode ends are "life losses" where the stack just goes on,
    and a few successors are unrelated stacks rather than the stack slid by one frame.
    """
    rng = np.random.default_rng(seed)

    def reset_stack() -> np.ndarray:
        kind = rng.integers(3)
        frame = rng.integers(0, 256, size=(H, W), dtype=np.uint8)
        if kind == 0:
            stack = np.zeros((K, H, W), np.uint8)
            stack[-1] = frame
            return stack
        if kind == 1:
            return np.repeat(frame[None], K, axis=0)
        return rng.integers(0, 256, size=(K, H, W), dtype=np.uint8)

    obs = np.stack([reset_stack() for _ in range(num_envs)])
    left = rng.choice([1, 2, 3, 5, 8, 20], size=num_envs)
    for _ in range(steps):
        new_frames = rng.integers(0, 256, size=(num_envs, 1, H, W), dtype=np.uint8)
        next_obs = np.concatenate([obs[:, 1:], new_frames], axis=1)
        # now and then a successor that is not the stack slid by one (nothing is assumed)
        jump = rng.random(num_envs) < 0.05
        next_obs[jump] = rng.integers(0, 256, size=(int(jump.sum()), K, H, W), dtype=np.uint8)
        left = left - 1
        ended = left == 0
        kind = rng.integers(0, 3, size=num_envs)
        terminated = ended & (kind != 1)
        truncated = ended & (kind == 1)
        actions = rng.integers(0, 6, size=num_envs)
        rewards = rng.normal(size=num_envs).astype(np.float32)
        yield obs, actions, rewards, terminated, truncated, next_obs
        obs = next_obs.copy()
        for e in np.flatnonzero(ended):
            if kind[e] != 2:  # kind 2: life loss, the stack carries on without a reset
                obs[e] = reset_stack()
            left[e] = rng.choice([1, 2, 3, 5, 8, 20])


def drive(buffers: list[Any], num_envs: int, steps: int, seed: int) -> None:
    for step in frame_stream(num_envs, steps, seed):
        for buf in buffers:
            buf.add(*step)


def assert_same(a: ReplaySample, b: ReplaySample) -> None:
    for name, x, y in zip(ReplaySample._fields, a, b, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y)), name


def frame_and_naive(capacity: int, num_envs: int, n_steps: int, overhead: float) -> tuple[
    FrameReplayBuffer, ReplayBuffer
]:  # fmt: skip
    args = (capacity, num_envs, (K, H, W), np.uint8, (), np.int64, "cpu", n_steps, 0.9)
    return FrameReplayBuffer(*args, frame_overhead=overhead), ReplayBuffer(*args)


@pytest.mark.parametrize("n_steps", [1, 3])
def test_frame_buffer_equals_naive_buffer(n_steps: int) -> None:
    # 16 rows per env over 300 steps: the ring wraps ~19 times; overhead 4.0 holds even
    # 1-step episodes (5 frames per row), so nothing is evicted and both hold the same rows
    frame, naive = frame_and_naive(48, 3, n_steps, overhead=4.0)
    drive([frame, naive], 3, 300, seed=n_steps)
    assert len(frame) == len(naive) == 48
    all_idx = np.arange(48)
    assert_same(frame.gather(all_idx), naive.gather(all_idx))
    assert_same(
        frame.sample(256, np.random.default_rng(7)), naive.sample(256, np.random.default_rng(7))
    )


def test_frame_buffer_equals_naive_at_every_step_while_filling() -> None:
    frame, naive = frame_and_naive(20, 2, 3, overhead=4.0)
    for step in frame_stream(2, 60, seed=11):
        frame.add(*step)
        naive.add(*step)
        valid = np.flatnonzero(naive.is_valid(np.arange(20)))
        assert np.array_equal(np.flatnonzero(frame.is_valid(np.arange(20))), valid)
        assert_same(frame.gather(valid), naive.gather(valid))


def test_frame_buffer_evicts_exactly_when_frames_run_out() -> None:
    # default overhead with 1..20-step episodes: the frame ring runs out, old rows are dropped
    frame, naive = frame_and_naive(48, 3, 3, overhead=0.05)
    per = PrioritizedReplay(frame_and_naive(48, 3, 3, overhead=0.05)[0], alpha=0.6)
    with pytest.warns(RuntimeWarning, match="drops its oldest transitions"):
        drive([frame, naive, per], 3, 300, seed=5)
    valid = frame.is_valid(np.arange(48))
    assert 0 < valid.sum() == len(frame) < len(naive)
    assert np.all(naive.is_valid(np.arange(48))[valid])
    idx = np.flatnonzero(valid)
    assert_same(frame.gather(idx), naive.gather(idx))
    sample = frame.sample(512, np.random.default_rng(3))
    assert np.all(valid[sample.indices])
    # the prioritized wrapper gave evicted rows priority 0, so it never samples them
    assert np.array_equal(per.buffer.is_valid(np.arange(48)), valid)
    assert np.all(per.tree.get(np.flatnonzero(~valid)) == 0)
    assert np.all(per.tree.get(idx) > 0)
    assert np.all(valid[per.sample(512, np.random.default_rng(4), beta=0.4).indices])


@pytest.mark.filterwarnings("ignore:FrameReplayBuffer ran out")
def test_frame_buffer_state_dict_roundtrip_continues_identically() -> None:
    # short episodes and the default overhead: some rows are evicted, a state to carry over
    frame, _ = frame_and_naive(24, 2, 3, overhead=0.05)
    steps = list(frame_stream(2, 80, seed=9))
    for s in steps[:50]:
        frame.add(*s)
    blob = io.BytesIO()
    torch.save(frame.state_dict(), blob)
    blob.seek(0)
    other, _ = frame_and_naive(24, 2, 3, overhead=0.05)
    other.load_state_dict(torch.load(blob, weights_only=True))
    for s in steps[50:]:
        frame.add(*s)
        other.add(*s)
    idx = np.flatnonzero(frame.is_valid(np.arange(24)))
    assert np.array_equal(other.is_valid(np.arange(24)), frame.is_valid(np.arange(24)))
    assert 0 < len(other) == len(frame) < 24
    assert_same(frame.gather(idx), other.gather(idx))


def test_frame_buffer_memory_is_one_frame_per_transition() -> None:
    # np.zeros does not touch the pages, so this allocates no real memory
    capacity, h, w = 100_000, 84, 84
    buf = FrameReplayBuffer(capacity, 8, (4, h, w), np.uint8, (), np.int64, "cpu")
    frame_bytes = capacity * h * w
    assert frame_bytes <= buf.nbytes <= 1.1 * frame_bytes
    naive_bytes = 2 * 4 * frame_bytes  # obs + next_obs, 4 frames each
    assert naive_bytes / buf.nbytes > 7


# --------------------------------------------------------------------------------------------
# PrioritizedReplay


def filled_per(num: int, alpha: float, eps: float) -> PrioritizedReplay:
    buf = ReplayBuffer(num, 1, (2,), np.float32, (), np.int64, "cpu", 1, 0.99)
    per = PrioritizedReplay(buf, alpha=alpha, eps=eps)
    for t in range(num):
        o = np.full((1, 2), t, np.float32)
        per.add(o, np.array([0]), np.array([1.0]), np.array([False]), np.array([False]), o + 1)
    return per


def test_importance_weights_and_stratification_hand_computed() -> None:
    # |delta| = 1, 4, 9, 16, alpha = 0.5, eps = 0 -> p = 1, 2, 3, 4; total 10, P = .1 .2 .3 .4
    per = filled_per(4, alpha=0.5, eps=0.0)
    per.update_priorities(np.arange(4), torch.tensor([-1.0, 4.0, -9.0, 16.0]))
    assert per.tree.get(np.arange(4)).tolist() == [1.0, 2.0, 3.0, 4.0]
    # batch 10: segment width 1, cumsum 1, 3, 6, 10 -> one draw per segment lands on these
    s = per.sample(10, np.random.default_rng(0), beta=0.5)
    assert s.indices.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    # w = (4 P)^-0.5 / max = sqrt(.1 / P): 1, 0.70711, 0.57735, 0.5
    expected = [1.0, 0.70711, 0.70711, 0.57735, 0.57735, 0.57735, 0.5, 0.5, 0.5, 0.5]
    assert np.allclose(s.weights.numpy(), expected, atol=1e-5)
    # beta = 1: w = (4 P)^-1 / max = .1 / P: 1, 0.5, 0.33333, 0.25
    s = per.sample(10, np.random.default_rng(1), beta=1.0)
    assert np.allclose(s.weights.numpy()[[0, 1, 3, 6]], [1.0, 0.5, 1 / 3, 0.25], atol=1e-6)
    # obs/next_obs come from the buffer at those indices
    assert s.obs[:, 0].tolist() == s.indices.tolist()
    assert (s.next_obs[:, 0] - s.obs[:, 0]).tolist() == [1.0] * 10


def test_new_transitions_get_max_priority_and_duplicates_last_wins() -> None:
    per = filled_per(6, alpha=1.0, eps=0.5)
    assert per.tree.get(np.arange(6)).tolist() == [1.0] * 6  # before any update: 1
    per.update_priorities(np.array([0, 1, 1]), np.array([2.5, 7.5, 0.5]))
    assert per.tree.get(np.array([0, 1])).tolist() == [3.0, 1.0]  # last duplicate wins
    o = np.zeros((1, 2), np.float32)
    written = per.add(o, np.array([0]), np.array([0.0]), np.array([False]), np.array([False]), o)
    assert per.tree.get(written).tolist() == [8.0]  # the largest (|delta| + eps)^alpha seen


@pytest.mark.parametrize("batch_size", [256, 37])
def test_sampling_frequencies_proportional_to_priority_alpha(batch_size: int) -> None:
    alpha = 0.7
    per = filled_per(16, alpha=alpha, eps=1e-6)
    td = np.arange(1, 17, dtype=np.float64)  # priorities 1 .. 16^0.7 = 6.96
    per.update_priorities(np.arange(16), td)
    expected = (td + 1e-6) ** alpha
    expected /= expected.sum()
    rng = np.random.default_rng(123)
    draws = 200_000
    counts = np.zeros(16)
    for _ in range(draws // batch_size):
        np.add.at(counts, per.sample_indices(batch_size, rng), 1)
    freq = counts / counts.sum()
    # stratified draws: the count error is O(1) per batch, far below the 3% allowed here
    assert np.max(np.abs(freq / expected - 1)) < 0.03
    # and through the full sample() path
    idx = np.concatenate([per.sample(1000, rng, beta=0.4).indices for _ in range(50)])
    freq = np.bincount(idx, minlength=16) / idx.size
    assert np.max(np.abs(freq / expected - 1)) < 0.03


def test_per_state_dict_roundtrip() -> None:
    per = filled_per(8, alpha=0.6, eps=1e-6)
    per.update_priorities(np.arange(8), np.linspace(0.1, 3, 8))
    blob = io.BytesIO()
    torch.save(per.state_dict(), blob)
    blob.seek(0)
    other = PrioritizedReplay(
        ReplayBuffer(8, 1, (2,), np.float32, (), np.int64, "cpu", 1, 0.99), alpha=0.6
    )
    other.load_state_dict(torch.load(blob, weights_only=True))
    assert np.array_equal(other.tree.tree, per.tree.tree)
    assert other.tree.max_priority == per.tree.max_priority
    a = per.sample(16, np.random.default_rng(2), beta=0.5)
    b = other.sample(16, np.random.default_rng(2), beta=0.5)
    assert_same(a, b)


# --------------------------------------------------------------------------------------------
# factory


def test_make_replay_buffer_picks_the_right_buffer() -> None:
    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    vec = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    buf = make_replay_buffer(frames, gym.spaces.Discrete(6), 1000, 8, "cpu", 3, 0.99, False, 0.6,
                             True)  # fmt: skip
    assert isinstance(buf, FrameReplayBuffer) and buf.n_steps == 3
    assert buf.capacity == 1000 and buf.capacity_per_env == 125
    buf = make_replay_buffer(frames, gym.spaces.Discrete(6), 1000, 8, "cpu", frame_stack=False)
    assert isinstance(buf, ReplayBuffer)
    channels_last = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)  # an image, not a stack
    buf = make_replay_buffer(channels_last, gym.spaces.Discrete(6), 100, 1, "cpu", frame_stack=True)
    assert isinstance(buf, ReplayBuffer)
    per = make_replay_buffer(vec, gym.spaces.Box(-1, 1, (2,)), 100, 4, "cpu", prioritized=True)
    assert isinstance(per, PrioritizedReplay) and isinstance(per.buffer, ReplayBuffer)
    assert per.buffer.actions.shape == (25, 4, 2) and per.buffer.actions.dtype == np.float32
    with pytest.raises(ValueError):
        make_replay_buffer(vec, gym.spaces.Text(5), 100, 4, "cpu")


# --------------------------------------------------------------------------------------------
# checkpoints: only the written part of the ring is saved, and it resumes exactly


def _saved(buf: Any) -> tuple[dict[str, Any], int]:
    """The buffer's state through torch.save / torch.load(weights_only) and the bytes written."""
    blob = io.BytesIO()
    torch.save(buf.state_dict(), blob)
    size = blob.tell()
    blob.seek(0)
    return torch.load(blob, weights_only=True), size


def _sample(buf: Any, seed: int) -> ReplaySample:
    rng = np.random.default_rng(seed)
    if isinstance(buf, PrioritizedReplay):
        return buf.sample(64, rng, beta=0.5)
    return buf.sample(64, rng)


def _ring_buffer(kind: str) -> Any:
    """3 envs x 200 rows of frame stacks: plain, frame-deduplicated or prioritized (frames)."""
    frame, naive = frame_and_naive(600, 3, 3, overhead=0.05)
    return {"plain": naive, "frames": frame, "prioritized": PrioritizedReplay(frame)}[kind]


@pytest.mark.filterwarnings("ignore:FrameReplayBuffer ran out")
@pytest.mark.parametrize("steps", [30, 700], ids=["partly_filled", "wrapped"])
@pytest.mark.parametrize("kind", ["plain", "frames", "prioritized"])
def test_state_holds_the_written_prefix_and_resumes_exactly(kind: str, steps: int) -> None:
    buf, other = _ring_buffer(kind), _ring_buffer(kind)
    stream = list(frame_stream(3, steps + 40, seed=steps))
    for step in stream[:steps]:
        buf.add(*step)
    if isinstance(buf, PrioritizedReplay):
        batch = buf.sample(32, np.random.default_rng(0), beta=0.5)
        buf.update_priorities(batch.indices, np.linspace(0.1, 5.0, 32))
    state, _ = _saved(buf)

    inner = buf.buffer if isinstance(buf, PrioritizedReplay) else buf
    rows = min(steps, inner.capacity_per_env)
    ring = state["buffer"] if isinstance(buf, PrioritizedReplay) else state
    for key in ("actions", "rewards", "terminated", "truncated"):
        assert ring[key].shape[0] == rows, key
    if isinstance(inner, FrameReplayBuffer):
        frames = min(int(inner.frames_written.max()), inner.frame_capacity)
        assert ring["frames"].shape[0] == frames
        assert frames < inner.frame_capacity or steps == 700  # the frame ring is cut too
        assert ring["obs_frame"].shape[0] == ring["next_frame"].shape[0] == rows
        assert ring["frames_written"].shape == (3,)  # per-env arrays whole
    else:
        assert ring["obs"].shape[0] == ring["next_obs"].shape[0] == rows
    if isinstance(buf, PrioritizedReplay):
        assert state["tree"]["leaves"].shape == (rows * 3,)

    other.load_state_dict(state)
    assert len(other) == len(buf)
    assert_same(_sample(other, 1), _sample(buf, 1))
    for step in stream[steps:]:  # and both go on identically
        buf.add(*step)
        other.add(*step)
    assert_same(_sample(other, 2), _sample(buf, 2))
    if isinstance(buf, PrioritizedReplay):
        assert np.array_equal(other.tree.tree, buf.tree.tree)  # inner nodes rebuilt bit for bit


def test_a_big_barely_filled_buffer_writes_a_small_file() -> None:
    # np.zeros commits no memory: these are 46 MB, 741 MB and 46 MB + 16 MB of tree on paper
    plain = ReplayBuffer(1_000_000, 1, (4,), np.float32, (), np.int64, "cpu")
    frames = FrameReplayBuffer(100_000, 1, (4, 84, 84), np.uint8, (), np.int64, "cpu")
    per = PrioritizedReplay(ReplayBuffer(1_000_000, 1, (4,), np.float32, (), np.int64, "cpu"))
    rng = np.random.default_rng(0)
    for buf, shape in ((plain, (1, 4)), (frames, (1, 4, 84, 84)), (per, (1, 4))):
        obs = rng.integers(0, 255, size=shape).astype(np.float32 if len(shape) == 2 else np.uint8)
        for _ in range(10):
            buf.add(obs, [1], [1.0], [False], [False], obs)
        _, size = _saved(buf)
        # 10 rows plus the zip's per-tensor overhead; frames: obs == next_obs does not slide,
        # so every step writes its 4 frames (44 x 7 KB), plus the 28 KB of the newest stack
        assert size < (400_000 if buf is frames else 30_000), (type(buf).__name__, size)
        assert size < buf.nbytes / 100


@pytest.mark.filterwarnings("ignore:FrameReplayBuffer ran out")
@pytest.mark.parametrize("kind", ["plain", "frames", "prioritized"])
def test_a_full_size_state_of_older_checkpoints_still_loads(kind: str) -> None:
    buf, other = _ring_buffer(kind), _ring_buffer(kind)
    drive([buf], 3, 30, seed=3)
    inner = buf.buffer if isinstance(buf, PrioritizedReplay) else buf
    # what state_dict wrote before prefixes: every array whole (and the whole sum tree)
    old: dict[str, Any] = {k: torch.from_numpy(v.copy()) for k, v in inner._arrays().items()}
    old["steps_added"] = inner.steps_added
    if isinstance(buf, PrioritizedReplay):
        tree = {"tree": torch.from_numpy(buf.tree.tree.copy()), "max_priority": 1.0}
        old = {"buffer": old, "tree": tree}
    other.load_state_dict(old)
    assert_same(_sample(other, 4), _sample(buf, 4))


def test_loading_writes_only_the_saved_prefix() -> None:
    # the rows past the prefix are not written over (zeros over a 7 GB buffer commit memory)
    buf = ReplayBuffer(1000, 1, (2,), np.float32, (), np.int64, "cpu")
    for t in range(5):
        o = np.full((1, 2), t, np.float32)
        buf.add(o, [0], [1.0], [False], [False], o + 1)
    other = ReplayBuffer(1000, 1, (2,), np.float32, (), np.int64, "cpu")
    other.obs[:] = 7.0  # a marker, not what a fresh buffer holds
    other.load_state_dict(_saved(buf)[0])
    assert np.array_equal(other.obs[:5], buf.obs[:5])
    assert np.all(other.obs[5:] == 7.0)


def _cut(key: str) -> Any:
    return lambda state: state.__setitem__(key, state[key][:-1])


@pytest.mark.filterwarnings("ignore:FrameReplayBuffer ran out")
@pytest.mark.parametrize(
    ("kind", "edit", "message"),
    [
        ("plain", _cut("obs"), r"replay state 'obs' has shape \(29, 3, 4, 3, 3\), expected "
         r"\(30, 3, 4, 3, 3\) \(the entries its counters imply\)"),
        ("plain", lambda s: s.__setitem__("steps_added", 31), r"'actions' has shape \(30, 3\)"),
        ("plain", lambda s: s.__setitem__("steps_added", -1), r"'steps_added' is -1, not a count"),
        ("plain", lambda s: s.__setitem__("steps_added", "30"), r"'steps_added' is '30'"),
        ("frames", _cut("frames"), r"replay state 'frames' has shape"),
        ("frames", lambda s: s["frames_written"].__setitem__(0, -4),
         r"'frames_written' must be 3 counts >= 0, got -4$"),
        ("frames", lambda s: s.__setitem__("frames_written", torch.zeros(2, dtype=torch.int64)),
         r"'frames_written' must be 3 counts >= 0, got shape \(2,\)"),
        ("prioritized", lambda s: s["tree"].__setitem__("leaves", s["tree"]["leaves"][:-1]),
         r"SumTree state 'leaves' has shape \(89,\), expected \(90,\)"),
        ("prioritized", lambda s: s["tree"]["leaves"].__setitem__(0, float("nan")),
         r"not finite and >= 0"),
    ],
)  # fmt: skip
def test_a_hostile_state_is_one_clear_value_error(kind: str, edit: Any, message: str) -> None:
    buf, other = _ring_buffer(kind), _ring_buffer(kind)
    drive([buf], 3, 30, seed=3)
    state, _ = _saved(buf)
    edit(state)
    with pytest.raises(ValueError, match=message):
        other.load_state_dict(state)
