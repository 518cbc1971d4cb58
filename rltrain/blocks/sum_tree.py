"""Array-backed sum tree for proportional prioritized replay (Schaul et al. 2016, sec. 3.3).

Layout: ``tree`` has ``2 * P`` float64 slots, ``P`` = capacity rounded up to a power of two.
Node 1 is the root, node ``i`` has children ``2i`` and ``2i + 1``, leaf ``j`` (the priority of
item ``j``) lives at ``P + j``; slot 0 is unused. Leaves ``capacity..P-1`` stay 0.

Both operations are vectorized over a batch and loop over the ``log2(P)`` tree levels only.
Parent sums are always recomputed from their two children (never incremented by deltas), so
floating-point error does not accumulate over millions of updates.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["SumTree"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class SumTree:
    """Sum tree over ``capacity`` non-negative priorities."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.capacity_pow2 = 1 << max(0, (self.capacity - 1).bit_length())
        self.depth = self.capacity_pow2.bit_length() - 1  # number of levels below the root
        self.tree: FloatArray = np.zeros(2 * self.capacity_pow2, dtype=np.float64)
        self.max_priority = 0.0  # largest priority ever written (new PER items get it)

    def _check(self, indices: npt.ArrayLike) -> IntArray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.capacity):
            raise IndexError(f"SumTree index out of range [0, {self.capacity})")
        return idx

    def update(self, indices: npt.ArrayLike, priorities: npt.ArrayLike) -> None:
        """Set ``priority[indices[i]] = priorities[i]``; for repeated indices the last one wins."""
        idx = self._check(indices)
        pri = np.broadcast_to(np.asarray(priorities, dtype=np.float64).reshape(-1), idx.shape)
        if idx.size == 0:
            return
        if not np.all(np.isfinite(pri)) or pri.min() < 0:
            raise ValueError("priorities must be finite and >= 0")
        # every priority passed counts as seen, also one overwritten within this batch
        self.max_priority = max(self.max_priority, float(pri.max()))
        # last write wins: keep the last occurrence of every index (first in the reversed array)
        _, first_in_reversed = np.unique(idx[::-1], return_index=True)
        keep = idx.size - 1 - first_in_reversed
        idx, pri = idx[keep], pri[keep]
        self.tree[idx + self.capacity_pow2] = pri
        nodes = np.unique((idx + self.capacity_pow2) >> 1)
        for _ in range(self.depth):
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            nodes = np.unique(nodes >> 1)

    def total(self) -> float:
        """Sum of all priorities."""
        return float(self.tree[1])

    def get(self, indices: npt.ArrayLike) -> FloatArray:
        """Priorities of ``indices``."""
        return self.tree[self._check(indices) + self.capacity_pow2].copy()

    def find_prefix_sum(self, values: npt.ArrayLike) -> IntArray:
        """For each value v, the smallest index i with ``cumsum(priorities)[i] > v``.

        That is ``np.searchsorted(np.cumsum(priorities), v, side="right")`` for
        ``0 <= v < total()``: a value exactly on a boundary belongs to the next item, and items
        with priority 0 are never returned. Values ``>= total()`` (e.g. a rounding overshoot)
        return the last index with a positive priority. With an all-zero tree the result is 0.
        """
        v = np.asarray(values, dtype=np.float64).reshape(-1).copy()
        node = np.ones(v.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.tree[left]
            # go right when v is past the left mass, but never into an empty subtree: this only
            # changes the path for v >= the subtree's total, where it picks the last positive leaf
            go_right = (v >= left_sum) & (self.tree[left + 1] > 0)
            v = np.where(go_right, v - left_sum, v)
            node = np.where(go_right, left + 1, left)
        return node - self.capacity_pow2

    def state_dict(self, leaves: int | None = None) -> dict[str, object]:
        """Tensors and floats only, so ``torch.load(weights_only=True)`` can read it back.

        The first ``leaves`` priorities (all by default): the caller knows that the others are
        still 0. The inner nodes are not saved; loading rebuilds them bit for bit, since every
        parent is always its children's sum.
        """
        count = self.capacity if leaves is None else leaves
        first = self.tree[self.capacity_pow2 : self.capacity_pow2 + count]
        return {"leaves": torch.from_numpy(first.copy()), "max_priority": self.max_priority}

    def load_state_dict(self, state: dict[str, object], leaves: int | None = None) -> None:
        """Load the priorities of :meth:`state_dict` (``leaves`` of them, when given) or, from
        checkpoints before that, the whole ``tree``; ValueError when they do not fit."""
        key = "tree" if "tree" in state else "leaves"
        raw = state[key]
        values = raw.numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw, np.float64)
        if key == "tree":
            expected: tuple[int, ...] = self.tree.shape
        else:
            expected = (self.capacity if leaves is None else leaves,)
        if values.shape != expected:
            raise ValueError(f"SumTree state '{key}' has shape {values.shape}, expected {expected}")
        if key == "tree":
            values = values[self.capacity_pow2 : self.capacity_pow2 + self.capacity]
        if values.size and not (np.all(np.isfinite(values)) and values.min() >= 0):
            raise ValueError("SumTree state holds priorities that are not finite and >= 0")
        self.tree[:] = 0.0
        self.tree[self.capacity_pow2 : self.capacity_pow2 + values.size] = values
        for level in reversed(range(self.depth)):  # parents from their children, bottom up
            lo, hi = 1 << level, 2 << level
            self.tree[lo:hi] = self.tree[2 * lo : 2 * hi : 2] + self.tree[2 * lo + 1 : 2 * hi : 2]
        self.max_priority = float(state["max_priority"])  # type: ignore[arg-type]
