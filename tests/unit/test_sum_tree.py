"""SumTree against brute-force numpy."""

from __future__ import annotations

import numpy as np
import pytest

from rltrain.blocks.sum_tree import SumTree


def expected_tree(priorities: np.ndarray, pow2: int) -> np.ndarray:
    """Every node's sum, computed bottom-up from the brute-force leaf array."""
    tree = np.zeros(2 * pow2)
    tree[pow2 : pow2 + priorities.size] = priorities
    for node in range(pow2 - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]
    return tree


@pytest.mark.parametrize("capacity", [1, 2, 7, 1000, 1024])
def test_sums_after_random_updates_match_brute_force(capacity: int) -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(capacity)
    assert tree.capacity_pow2 >= capacity and tree.capacity_pow2 < 2 * max(capacity, 1)
    brute = np.zeros(capacity)
    seen_max = 0.0
    for _ in range(50):
        idx = rng.integers(0, capacity, size=rng.integers(1, 64))  # duplicates are likely
        pri = rng.random(idx.size) * 10
        tree.update(idx, pri)
        for i, p in zip(idx, pri, strict=True):  # sequential reference: last write wins
            brute[i] = p
        seen_max = max(seen_max, pri.max())
    assert np.allclose(tree.tree, expected_tree(brute, tree.capacity_pow2), rtol=1e-12)
    assert tree.total() == pytest.approx(brute.sum(), rel=1e-12)
    assert np.array_equal(tree.get(np.arange(capacity)), brute)
    assert tree.max_priority == seen_max


def test_duplicate_indices_last_write_wins() -> None:
    tree = SumTree(8)
    tree.update(np.array([3, 5, 3, 3, 5]), np.array([1.0, 2.0, 9.0, 4.0, 6.0]))
    assert tree.get(np.array([3, 5])).tolist() == [4.0, 6.0]
    assert tree.total() == 10.0
    assert tree.max_priority == 9.0  # the largest value ever written, even if overwritten


def test_prefix_sum_equals_searchsorted_random_values() -> None:
    rng = np.random.default_rng(1)
    pri = rng.random(777) * rng.integers(0, 2, size=777)  # about half are exactly 0
    tree = SumTree(777)
    tree.update(np.arange(777), pri)
    cums = np.cumsum(pri)
    values = rng.random(20_000) * tree.total()
    found = tree.find_prefix_sum(values)
    assert np.array_equal(found, np.searchsorted(cums, values, side="right"))
    assert np.all(pri[found] > 0)


def test_prefix_sum_boundaries_exact() -> None:
    # integer priorities: every partial sum is exact in float64, so boundaries are meaningful
    pri = np.array([3.0, 0.0, 1.0, 0.0, 0.0, 2.0, 5.0, 0.0, 1.0, 0.0])
    tree = SumTree(pri.size)
    tree.update(np.arange(pri.size), pri)
    cums = np.cumsum(pri)  # [3, 3, 4, 4, 4, 6, 11, 11, 12, 12]
    below = np.nextafter(cums, -np.inf)
    values = np.concatenate([[0.0], cums[cums < tree.total()], below, [11.5]])
    found = tree.find_prefix_sum(values)
    assert np.array_equal(found, np.searchsorted(cums, values, side="right"))
    # spelled out: a value on a boundary belongs to the next positive item
    assert tree.find_prefix_sum(np.array([0.0, 2.999, 3.0, 4.0, 6.0, 11.0])).tolist() == [
        0, 0, 2, 5, 6, 8,
    ]  # fmt: skip
    # at or past the total (rounding overshoot): the last positive item, never a zero one
    assert tree.find_prefix_sum(np.array([12.0, 13.0])).tolist() == [8, 8]


def test_rejects_bad_input() -> None:
    tree = SumTree(4)
    with pytest.raises(IndexError):
        tree.update(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([np.nan]))


def test_state_dict_roundtrip() -> None:
    tree = SumTree(5)
    tree.update(np.arange(5), np.arange(5, dtype=float))
    other = SumTree(5)
    other.load_state_dict(tree.state_dict())
    assert np.array_equal(other.tree, tree.tree) and other.max_priority == 4.0
