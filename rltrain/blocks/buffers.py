"""Replay buffers: plain, frame-deduplicated (Atari) and proportional prioritized.

Layout. Every buffer keeps one stream per env: arrays are ``[capacity_per_env, num_envs, ...]``
and one ``add`` call writes row ``steps_added % capacity_per_env`` for all envs at once, so the
steps of one env are contiguous in time along axis 0 (modulo the ring). A flat index is
``row * num_envs + env``; it is what :class:`PrioritizedReplay` keys its sum tree by.

What ``add`` expects. Each row is one real transition of each env: ``next_obs[e]`` is the TRUE
successor of ``obs[e]`` (the final observation where the episode ended; with gymnasium vector
envs that is ``info["final_obs"]`` in SAME_STEP autoreset mode), and ``obs`` of the next call
is the reset observation. Do not add the dummy "reset steps" of NEXT_STEP autoreset mode: their
action is ignored by the env and their transition (final obs -> reset obs) is not real.

n-step returns are formed at sample time (Sutton & Barto sec. 7.1; Rainbow, Hessel et al. 2018):
from start row t the window runs over t..t+n-1 of the same env stream and stops early at the
first done step (terminated or truncated, inclusive) and at the newest written row. Choice for
the newest rows: their window is TRUNCATED to what exists (m < n steps, bootstrapped from the
true successor of the last step with gamma^m), rather than excluded from sampling. That target
is still correct (a shorter-horizon return), every stored transition stays sampleable, and
prioritized replay needs no special zero-priority region. The window reads only rows written
after t and not yet overwritten, since the ring overwrites the OLDEST row first.

    rewards   = sum_{k<m} gamma^k r_{t+k}
    discounts = gamma^m * (1 - terminated_{t+m-1})
    next_obs  = true successor of step t+m-1
    target    = rewards + discounts * max_a Q(next_obs, a)
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch

from rltrain.blocks.sum_tree import SumTree

__all__ = [
    "FrameReplayBuffer",
    "PrioritizedReplay",
    "ReplayBuffer",
    "ReplaySample",
    "make_replay_buffer",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class ReplaySample(NamedTuple):
    """A batch of (n-step) transitions, ready for a TD target."""

    obs: torch.Tensor  # [B, *obs_shape] (uint8 for frames: the network scales)
    actions: torch.Tensor  # [B] int64 (discrete) or [B, act_dim] float32
    rewards: torch.Tensor  # [B] float32: sum_{k<m} gamma^k r_{t+k}
    next_obs: torch.Tensor  # [B, *obs_shape]: s_{t+m}, the true successor
    discounts: torch.Tensor  # [B] float32: gamma^m * (1 - terminated_{t+m-1})
    weights: torch.Tensor  # [B] float32 importance weights (ones without prioritization)
    indices: np.ndarray  # [B] flat buffer indices (row * num_envs + env), for priority updates


def _to_numpy(x: Any, dtype: npt.DTypeLike | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _tensor_state(
    arrays: dict[str, np.ndarray], filled: dict[str, int]
) -> dict[str, torch.Tensor]:
    """The arrays as tensors, the ring ones (``filled``: key -> entries ever written) cut to
    their written prefix. No copy (like nn.Module.state_dict): a 1M-frame buffer is 7 GB, a copy
    would double it; the tensors share memory with the buffer, so save them before the next
    add(). ``torch.from_numpy`` of a numpy slice owns a storage of just that slice, so
    torch.save writes the prefix only (a torch slice would write its whole storage)."""
    return {k: torch.from_numpy(v[: filled.get(k, len(v))]) for k, v in arrays.items()}


def _load_arrays(
    arrays: dict[str, np.ndarray], state: dict[str, Any], filled: dict[str, int]
) -> None:
    """Copy a saved state into freshly built arrays. A ring array holds its written prefix
    (``filled``, from the saved counters) or, from checkpoints before prefixes, its whole
    length; only those entries are written, so the untouched rest commits no memory. Every
    shape is checked before anything is written."""
    values: dict[str, np.ndarray] = {}
    for key, arr in arrays.items():
        value = _to_numpy(state[key])
        n = filled.get(key)
        prefix = arr.shape if n is None else (n, *arr.shape[1:])
        if value.shape not in (prefix, arr.shape):
            expected = f"{prefix}" if n is None else f"{prefix} (the entries its counters imply)"
            raise ValueError(f"replay state '{key}' has shape {value.shape}, expected {expected}")
        values[key] = value
    for key, value in values.items():
        arrays[key][: len(value)] = value


def _counter(state: dict[str, Any], key: str) -> int:
    """A saved non-negative counter, refused (ValueError) when it is not one."""
    value = state[key]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"replay state '{key}' is {value!r}, not a count >= 0")
    return value


def _as_words(stacks: np.ndarray) -> np.ndarray:
    """View contiguous ``[n, k, ...]`` stacks as ``[n, k, words]`` of the widest unsigned int
    that divides a frame's bytes: equality tests then compare 8 bytes at a time (4x faster)."""
    flat = stacks.reshape(stacks.shape[0], stacks.shape[1], -1).view(np.uint8)
    for word in (np.uint64, np.uint32, np.uint16):
        if flat.shape[-1] % np.dtype(word).itemsize == 0:
            return flat.view(word)
    return flat


class _RingReplay:
    """Shared storage and sampling of the per-env transition ring (not used directly).

    Subclasses store observations (:meth:`_write_obs`, :meth:`_gather_obs`,
    :meth:`_gather_next_obs`) and may invalidate old rows early (``_first_valid``).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: npt.DTypeLike,
        action_shape: tuple[int, ...],
        action_dtype: npt.DTypeLike,
        device: torch.device | str,
        n_steps: int = 1,
        gamma: float = 0.99,
    ) -> None:
        if capacity < 1 or num_envs < 1:
            raise ValueError(f"capacity and num_envs must be >= 1, got {capacity}, {num_envs}")
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.num_envs = int(num_envs)
        self.capacity_per_env = math.ceil(capacity / num_envs)
        self.capacity = self.capacity_per_env * self.num_envs  # slots (>= the capacity asked)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.obs_dtype = np.dtype(obs_dtype)
        self.action_shape = tuple(int(d) for d in action_shape)
        self.action_dtype = np.dtype(action_dtype)
        self.device = torch.device(device)
        self.n_steps = int(n_steps)
        self.gamma = float(gamma)
        rows, n = self.capacity_per_env, self.num_envs
        self.actions = np.zeros((rows, n, *self.action_shape), dtype=self.action_dtype)
        self.rewards = np.zeros((rows, n), dtype=np.float32)
        self.terminated = np.zeros((rows, n), dtype=bool)
        self.truncated = np.zeros((rows, n), dtype=bool)
        self.steps_added = 0  # rows written per env since the start (absolute row counter)
        # oldest absolute row still valid per env (the frame buffer may drop rows early)
        self._first_valid = np.zeros(n, dtype=np.int64)
        self._evicted: list[IntArray] = []
        self._gamma_pows = self.gamma ** np.arange(self.n_steps + 1, dtype=np.float64)

    # -- subclass hooks -----------------------------------------------------------------------
    def _write_obs(self, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        raise NotImplementedError

    def _gather_obs(self, rows: IntArray, envs: IntArray) -> np.ndarray:
        raise NotImplementedError

    def _gather_next_obs(self, rows: IntArray, envs: IntArray) -> np.ndarray:
        raise NotImplementedError

    def _after_add(self) -> None:
        """Called once ``steps_added`` counts the new row (frame eviction)."""

    def _obs_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _obs_filled(self, rows: int, state: dict[str, Any]) -> dict[str, int]:
        """Entries ever written of each ring array of :meth:`_obs_arrays`, for a state with
        ``rows`` rows written (arrays missing here are per env, saved whole)."""
        raise NotImplementedError

    # -- public API ---------------------------------------------------------------------------
    def _valid_lo(self) -> IntArray:
        """Oldest valid absolute row of each env."""
        return np.maximum(self._first_valid, self.steps_added - self.capacity_per_env)

    def __len__(self) -> int:
        """Number of valid (sampleable) transitions over all envs."""
        return int((self.steps_added - self._valid_lo()).sum())

    def add(
        self,
        obs: Any,
        actions: Any,
        rewards: Any,
        terminated: Any,
        truncated: Any,
        next_obs: Any,
    ) -> IntArray:
        """Write one transition per env (leading dim ``num_envs``); returns their flat indices."""
        n = self.num_envs
        obs_np = _to_numpy(obs, self.obs_dtype)
        next_np = _to_numpy(next_obs, self.obs_dtype)
        expected = (n, *self.obs_shape)
        if obs_np.shape != expected or next_np.shape != expected:
            raise ValueError(
                f"obs/next_obs must have shape {expected}, got {obs_np.shape} and {next_np.shape}"
            )
        row = self.steps_added % self.capacity_per_env
        self._write_obs(row, obs_np, next_np)
        self.actions[row] = _to_numpy(actions, self.action_dtype).reshape(n, *self.action_shape)
        self.rewards[row] = _to_numpy(rewards, np.float32).reshape(n)
        self.terminated[row] = _to_numpy(terminated).reshape(n).astype(bool)
        self.truncated[row] = _to_numpy(truncated).reshape(n).astype(bool)
        self.steps_added += 1
        self._after_add()
        return row * n + np.arange(n, dtype=np.int64)

    def take_evicted(self) -> IntArray:
        """Flat indices invalidated before being overwritten since the last call (then cleared).

        Only the frame buffer drops rows early (when its frame store runs out); a prioritized
        wrapper sets their priority to 0.
        """
        if not self._evicted:
            return np.zeros(0, dtype=np.int64)
        out = np.concatenate(self._evicted)
        self._evicted.clear()
        return out

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplaySample:
        """Uniform sample (with replacement) over all valid transitions, n-step targets."""
        lo = self._valid_lo()
        counts = self.steps_added - lo
        total = int(counts.sum())
        if total == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        j = rng.integers(0, total, size=batch_size)
        ends = np.cumsum(counts)
        envs = np.searchsorted(ends, j, side="right")
        abs_rows = lo[envs] + (j - (ends[envs] - counts[envs]))
        rows = abs_rows % self.capacity_per_env
        return self.gather(rows * self.num_envs + envs)

    def is_valid(self, indices: Any) -> npt.NDArray[np.bool_]:
        """Whether each flat index holds a valid (written, not overwritten, not evicted) row."""
        idx = _to_numpy(indices, np.int64).reshape(-1)
        rows, envs = idx // self.num_envs, idx % self.num_envs
        age = (self.steps_added - 1 - rows) % self.capacity_per_env  # 0 = newest row
        in_range = (idx >= 0) & (idx < self.capacity)
        return in_range & (self.steps_added - 1 - age >= self._valid_lo()[envs])

    def gather(self, indices: Any, weights: Any = None) -> ReplaySample:
        """The n-step sample starting at each flat index (vectorized, no loop over the batch)."""
        idx = _to_numpy(indices, np.int64).reshape(-1)
        if not np.all(self.is_valid(idx)):
            raise IndexError("gather() got an index of an unwritten, overwritten or evicted row")
        n_envs, cap = self.num_envs, self.capacity_per_env
        rows, envs = idx // n_envs, idx % n_envs
        steps_to_newest = (self.steps_added - 1 - rows) % cap + 1  # rows t..newest, inclusive

        k = np.arange(self.n_steps)
        win_rows = (rows[:, None] + k) % cap  # [B, n]
        win_envs = envs[:, None]
        done = self.terminated[win_rows, win_envs] | self.truncated[win_rows, win_envs]
        dones_before = np.cumsum(done, axis=1) - done  # episode ends strictly before offset k
        in_window = (k < steps_to_newest[:, None]) & (dones_before == 0)
        m = in_window.sum(axis=1)  # >= 1: offset 0 is always in the window
        # np.where, not a product: masked-out slots may hold stale data from an old episode
        step_rewards = self.rewards[win_rows, win_envs] * self._gamma_pows[k]
        disc_rewards = np.where(in_window, step_rewards, 0.0)
        last_rows = (rows + m - 1) % cap
        discounts = self._gamma_pows[m] * (1.0 - self.terminated[last_rows, envs])

        if weights is None:
            w = torch.ones(idx.shape[0], dtype=torch.float32)
        else:
            w = torch.as_tensor(_to_numpy(weights, np.float32).reshape(-1))
        dev = self.device
        return ReplaySample(
            obs=torch.from_numpy(self._gather_obs(rows, envs)).to(dev),
            actions=torch.from_numpy(self.actions[rows, envs]).to(dev),
            rewards=torch.from_numpy(disc_rewards.sum(axis=1).astype(np.float32)).to(dev),
            next_obs=torch.from_numpy(self._gather_next_obs(last_rows, envs)).to(dev),
            discounts=torch.from_numpy(discounts.astype(np.float32)).to(dev),
            weights=w.to(dev),
            indices=idx,
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "first_valid": self._first_valid,
            **self._obs_arrays(),
        }

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated arrays."""
        return int(sum(a.nbytes for a in self._arrays().values()))

    @property
    def filled_rows(self) -> int:
        """Rows per env ever written: the ring's prefix ``0..filled_rows-1``."""
        return min(self.steps_added, self.capacity_per_env)

    def _filled(self, state: dict[str, Any]) -> dict[str, int]:
        """Entries ever written of each ring array, from the counters of ``state`` (this
        buffer's own in :meth:`state_dict`, a checkpoint's when loading)."""
        rows = min(_counter(state, "steps_added"), self.capacity_per_env)
        ring = dict.fromkeys(("actions", "rewards", "terminated", "truncated"), rows)
        return ring | self._obs_filled(rows, state)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only, so ``torch.load(path, weights_only=True)`` reads it back.

        Only what was ever written is saved: a ring array's rows (or frames) past the newest
        written one are still the zeros the buffer was built with, so a 1e5-row Atari buffer
        12k steps into training saves 86 MB, not 771 MB. The tensors share memory
        with the buffer (no 7 GB copy): save before the next add.
        """
        counters: dict[str, Any] = {"steps_added": self.steps_added, **self._counters()}
        state: dict[str, Any] = dict(_tensor_state(self._arrays(), self._filled(counters)))
        state["steps_added"] = self.steps_added
        return state

    def _counters(self) -> dict[str, Any]:
        """The per-env counters besides ``steps_added`` that :meth:`_obs_filled` reads."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load into a freshly built buffer of the same shape (what a resume builds): the rows
        never written are left as they are, i.e. zero."""
        _load_arrays(self._arrays(), state, self._filled(state))
        self.steps_added = _counter(state, "steps_added")
        self._evicted.clear()


class ReplayBuffer(_RingReplay):
    """Replay buffer storing ``obs`` and ``next_obs`` of every transition as given.

    ``next_obs`` is kept separately (not read from the next row) because at an episode end the
    next row's ``obs`` is the reset observation while the true successor is the final one.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: npt.DTypeLike,
        action_shape: tuple[int, ...],
        action_dtype: npt.DTypeLike,
        device: torch.device | str,
        n_steps: int = 1,
        gamma: float = 0.99,
    ) -> None:
        super().__init__(
            capacity, num_envs, obs_shape, obs_dtype, action_shape, action_dtype, device,
            n_steps, gamma,
        )  # fmt: skip
        shape = (self.capacity_per_env, self.num_envs, *self.obs_shape)
        self.obs = np.zeros(shape, dtype=self.obs_dtype)
        self.next_obs = np.zeros(shape, dtype=self.obs_dtype)

    def _write_obs(self, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        self.obs[row] = obs
        self.next_obs[row] = next_obs

    def _gather_obs(self, rows: IntArray, envs: IntArray) -> np.ndarray:
        return self.obs[rows, envs]

    def _gather_next_obs(self, rows: IntArray, envs: IntArray) -> np.ndarray:
        return self.next_obs[rows, envs]

    def _obs_arrays(self) -> dict[str, np.ndarray]:
        return {"obs": self.obs, "next_obs": self.next_obs}

    def _obs_filled(self, rows: int, state: dict[str, Any]) -> dict[str, int]:
        return {"obs": rows, "next_obs": rows}


class FrameReplayBuffer(_RingReplay):
    """Replay for stacked frame observations ``[k, H, W]`` that stores each frame once.

    Each env stream has a ring of single frames ``frames[F, num_envs, H, W]``; a transition
    keeps two absolute frame numbers, the newest frame of ``obs`` and of ``next_obs``, and a
    stack is rebuilt at sample time as the k consecutive frames ending there. Per ``add``:

    * ``obs`` is reused (no write) when it equals the previous call's ``next_obs`` of that env,
      i.e. inside an episode. Otherwise (first call, a reset observation after an episode
      end) all k frames of ``obs`` are written, so whatever padding the env's frame stack put
      into a reset observation is rebuilt exactly, with no assumption about it.
    * ``next_obs`` costs one frame when it is ``obs`` slid by one (``next[:-1] == obs[1:]``),
      the final observation of an episode included; otherwise all its k frames are written.

    Decisions are taken by comparing the arrays, never by trusting done flags, so the rebuilt
    stacks are exactly what a buffer holding full ``obs``/``next_obs`` would return. Steady
    state: one frame per transition, plus k per episode (its reset observation). The frame
    ring holds ``F = C + 2k + ceil(frame_overhead * C)`` frames per env (C rows per env), which
    never runs out while episodes average at least ``k / frame_overhead`` steps (80 for k = 4
    and the default 0.05). If it does run out, the oldest rows whose frames were overwritten
    are dropped early (never sampled; see :meth:`take_evicted`), so what is returned is always
    exact and the buffer just holds fewer transitions.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: npt.DTypeLike,
        action_shape: tuple[int, ...],
        action_dtype: npt.DTypeLike,
        device: torch.device | str,
        n_steps: int = 1,
        gamma: float = 0.99,
        frame_overhead: float = 0.05,
    ) -> None:
        super().__init__(
            capacity, num_envs, obs_shape, obs_dtype, action_shape, action_dtype, device,
            n_steps, gamma,
        )  # fmt: skip
        if len(self.obs_shape) != 3:
            raise ValueError(f"FrameReplayBuffer needs [k, H, W] observations, got {obs_shape}")
        k, h, w = self.obs_shape
        self.stack = k
        cap, n = self.capacity_per_env, self.num_envs
        self.frame_capacity = cap + 2 * k + math.ceil(frame_overhead * cap)
        self.frames = np.zeros((self.frame_capacity, n, h, w), dtype=self.obs_dtype)
        self.obs_frame = np.zeros((cap, n), dtype=np.int64)  # absolute no. of obs's newest frame
        self.next_frame = np.zeros((cap, n), dtype=np.int64)  # same for next_obs
        self.frames_written = np.zeros(n, dtype=np.int64)
        self._last_next = np.zeros((n, k, h, w), dtype=self.obs_dtype)
        self._last_next_frame = np.zeros(n, dtype=np.int64)
        self._warned = False

    def _write_stacks(self, envs: IntArray, stacks: np.ndarray) -> None:
        """Append all k frames of ``stacks[i]`` to the ring of env ``envs[i]``."""
        if envs.size == 0:
            return
        k = self.stack
        pos = (self.frames_written[envs, None] + np.arange(k)) % self.frame_capacity
        self.frames[pos, envs[:, None]] = stacks
        self.frames_written[envs] += k

    def _write_obs(self, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        n, all_envs = self.num_envs, np.arange(self.num_envs)
        obs, next_obs = np.ascontiguousarray(obs), np.ascontiguousarray(next_obs)
        obs_words, next_words = _as_words(obs), _as_words(next_obs)
        if self.steps_added > 0:
            reuse = (obs_words == _as_words(self._last_next)).all(axis=(1, 2))
        else:
            reuse = np.zeros(n, dtype=bool)
        self._write_stacks(all_envs[~reuse], obs[~reuse])
        self.obs_frame[row] = np.where(reuse, self._last_next_frame, self.frames_written - 1)

        # the newest frame of obs is now the last one written, so a slid stack needs one frame
        slid = (next_words[:, :-1] == obs_words[:, 1:]).all(axis=(1, 2))
        one = all_envs[slid]
        self.frames[self.frames_written[one] % self.frame_capacity, one] = next_obs[one, -1]
        self.frames_written[one] += 1
        self._write_stacks(all_envs[~slid], next_obs[~slid])
        self.next_frame[row] = self.frames_written - 1
        self._last_next[...] = next_obs
        self._last_next_frame[...] = self.frames_written - 1

    def _after_add(self) -> None:
        # drop the oldest rows whose obs stack reaches into overwritten frames; at most a few
        # rows per add (each row owns >= 1 frame), so this loops a handful of times at most
        lo = self._valid_lo()
        oldest_kept = self.frames_written - self.frame_capacity
        envs = np.arange(self.num_envs)
        while True:
            rows = lo % self.capacity_per_env
            stale = (lo < self.steps_added) & (
                self.obs_frame[rows, envs] - (self.stack - 1) < oldest_kept
            )
            if not stale.any():
                break
            self._evicted.append(rows[stale] * self.num_envs + envs[stale])
            lo = lo + stale
            if not self._warned:
                self._warned = True
                warnings.warn(
                    "FrameReplayBuffer ran out of frame storage and drops its oldest transitions "
                    "early: episodes are shorter than about k / frame_overhead steps, or the "
                    "observations are not frame stacks that slide by one frame per step. "
                    "Samples stay exact; the buffer holds fewer transitions than its capacity.",
                    RuntimeWarning,
                    stacklevel=3,
                )
        self._first_valid = lo

    def _stack_at(self, newest: IntArray, envs: IntArray) -> np.ndarray:
        frame_no = newest[:, None] - (self.stack - 1) + np.arange(self.stack)
        return self.frames[frame_no % self.frame_capacity, envs[:, None]]

    def _gather_obs(self, rows: IntArray, envs: IntArray) -> np.ndarray:
        return self._stack_at(self.obs_frame[rows, envs], envs)

    def _gather_next_obs(self, rows: IntArray, envs: IntArray) -> np.ndarray:
        return self._stack_at(self.next_frame[rows, envs], envs)

    def _obs_arrays(self) -> dict[str, np.ndarray]:
        return {
            "frames": self.frames,
            "obs_frame": self.obs_frame,
            "next_frame": self.next_frame,
            "frames_written": self.frames_written,
            "last_next": self._last_next,
            "last_next_frame": self._last_next_frame,
        }

    def _counters(self) -> dict[str, Any]:
        return {"frames_written": self.frames_written}

    def _obs_filled(self, rows: int, state: dict[str, Any]) -> dict[str, int]:
        # env e writes frame slots 0, 1, ... in order and wraps at frame_capacity, so the slots
        # ever written by any env are exactly the first min(max_e frames_written[e], F)
        written = _to_numpy(state["frames_written"])
        if written.shape != (self.num_envs,) or written.dtype.kind not in "iu":
            got = f"shape {written.shape} of {written.dtype}"
        elif written.size and written.min() < 0:
            got = f"{int(written.min())}"
        else:
            got = None
        if got is not None:
            raise ValueError(
                f"replay state 'frames_written' must be {self.num_envs} counts >= 0, got {got}"
            )
        frames = min(int(written.max(initial=0)), self.frame_capacity)
        return {"frames": frames, "obs_frame": rows, "next_frame": rows}


AnyReplay = ReplayBuffer | FrameReplayBuffer


class PrioritizedReplay:
    """Proportional prioritized replay (Schaul et al. 2016, arXiv:1511.05952) around a buffer.

    Composition: it holds a :class:`ReplayBuffer` or :class:`FrameReplayBuffer` and a
    :class:`SumTree` over the buffer's flat indices.

    * ``P(i) = p_i / sum_j p_j`` with ``p_i = (|delta_i| + eps)^alpha``
      (:meth:`update_priorities`); a new transition gets the largest priority seen so far
      (1.0 before any update), so it is sampled at least once soon.
    * :meth:`sample` is stratified: the priority mass is cut into ``batch_size`` equal
      segments and one value is drawn uniformly in each (Schaul et al., appendix B.2.1), which
      lowers the variance of the batch composition against independent draws.
    * Importance weights ``w_i = (N * P(i))^-beta / max_j w_j`` over the batch, N = number of
      valid transitions; the caller anneals beta towards 1 and passes it in.
    """

    def __init__(self, buffer: AnyReplay, alpha: float = 0.6, eps: float = 1e-6) -> None:
        if alpha < 0 or eps < 0:
            raise ValueError(f"alpha and eps must be >= 0, got {alpha}, {eps}")
        self.buffer = buffer
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.tree = SumTree(buffer.capacity)

    # thin delegation so trainers can treat it like a buffer
    @property
    def n_steps(self) -> int:
        return self.buffer.n_steps

    @property
    def gamma(self) -> float:
        return self.buffer.gamma

    @property
    def capacity(self) -> int:
        return self.buffer.capacity

    @property
    def num_envs(self) -> int:
        return self.buffer.num_envs

    @property
    def device(self) -> torch.device:
        return self.buffer.device

    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes + self.tree.tree.nbytes

    def add(
        self,
        obs: Any,
        actions: Any,
        rewards: Any,
        terminated: Any,
        truncated: Any,
        next_obs: Any,
    ) -> IntArray:
        """Add to the buffer; the new rows get the max priority, evicted rows priority 0."""
        written = self.buffer.add(obs, actions, rewards, terminated, truncated, next_obs)
        new_priority = self.tree.max_priority if self.tree.max_priority > 0 else 1.0
        self.tree.update(written, np.full(written.shape, new_priority))
        evicted = self.buffer.take_evicted()
        if evicted.size:
            self.tree.update(evicted, np.zeros(evicted.shape))
        return written

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> IntArray:
        """Stratified proportional draw: one index per equal segment of the priority mass."""
        total = self.tree.total()
        if total <= 0 or len(self.buffer) == 0:
            raise ValueError("cannot sample from an empty prioritized replay buffer")
        values = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        return self.tree.find_prefix_sum(values)

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float) -> ReplaySample:
        """Prioritized n-step sample with importance weights ``(N P(i))^-beta / max w``."""
        idx = self.sample_indices(batch_size, rng)
        probs = self.tree.get(idx) / self.tree.total()
        weights = (len(self.buffer) * probs) ** (-beta)
        return self.buffer.gather(idx, weights=weights / weights.max())

    def update_priorities(self, indices: Any, td_errors: Any) -> None:
        """``p_i = (|delta_i| + eps)^alpha`` for the sampled ``indices`` (last duplicate wins)."""
        idx = _to_numpy(indices, np.int64).reshape(-1)
        delta = np.abs(_to_numpy(td_errors, np.float64).reshape(-1))
        # a row evicted since it was sampled (frame buffer) must keep priority 0
        keep = self.buffer.is_valid(idx)
        self.tree.update(idx[keep], (delta[keep] + self.eps) ** self.alpha)

    def state_dict(self) -> dict[str, Any]:
        # flat index = row * num_envs + env: the written rows are the first leaves
        leaves = self.buffer.filled_rows * self.num_envs
        return {"buffer": self.buffer.state_dict(), "tree": self.tree.state_dict(leaves)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.tree.load_state_dict(state["tree"], self.buffer.filled_rows * self.num_envs)


def make_replay_buffer(
    obs_space: gym.Space[Any],
    action_space: gym.Space[Any],
    capacity: int,
    num_envs: int,
    device: torch.device | str,
    n_steps: int = 1,
    gamma: float = 0.99,
    prioritized: bool = False,
    alpha: float = 0.6,
    frame_stack: bool = False,
    eps: float = 1e-6,
) -> ReplayBuffer | FrameReplayBuffer | PrioritizedReplay:
    """Build the replay buffer for single-env spaces (``envs.single_observation_space``).

    Picks :class:`FrameReplayBuffer` when ``frame_stack`` is set (the env stacks frames, so
    consecutive observations share k - 1 frames) and observations are uint8 stacks
    ``[k, H, W]`` with k smaller than H and W (a channels-last ``[H, W, C]`` image is not a
    stack); otherwise :class:`ReplayBuffer`, which is always correct, only bigger.
    Discrete actions are stored as int64 ``[]``, Box actions as float32 ``[act_dim]``.
    Wraps in :class:`PrioritizedReplay` when ``prioritized``.
    """
    obs_shape = tuple(obs_space.shape or ())
    obs_dtype = np.dtype(obs_space.dtype if obs_space.dtype is not None else np.float32)
    action_shape: tuple[int, ...]
    action_dtype: np.dtype[Any]
    if isinstance(action_space, gym.spaces.Discrete):
        action_shape, action_dtype = (), np.dtype(np.int64)
    elif isinstance(action_space, gym.spaces.Box):
        action_shape, action_dtype = tuple(action_space.shape), np.dtype(np.float32)
    elif isinstance(action_space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        action_shape, action_dtype = tuple(action_space.shape), np.dtype(np.int64)
    else:
        raise ValueError(f"replay buffers do not support action space {action_space}")
    buffer: AnyReplay
    is_stack = len(obs_shape) == 3 and obs_shape[0] < min(obs_shape[1], obs_shape[2])
    if frame_stack and obs_dtype == np.uint8 and is_stack:
        buffer = FrameReplayBuffer(
            capacity, num_envs, obs_shape, obs_dtype, action_shape, action_dtype, device,
            n_steps, gamma,
        )  # fmt: skip
    else:
        buffer = ReplayBuffer(
            capacity, num_envs, obs_shape, obs_dtype, action_shape, action_dtype, device,
            n_steps, gamma,
        )  # fmt: skip
    return PrioritizedReplay(buffer, alpha=alpha, eps=eps) if prioritized else buffer
