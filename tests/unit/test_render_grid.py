from __future__ import annotations

import itertools

import numpy as np
import pytest

from rltrain.envs.render_grid import (
    error_heatmap,
    policy_arrows,
    text_policy,
    text_values,
    value_heatmap,
)

ROWS, COLS, CELL = 3, 5, 24
S = ROWS * COLS
WALLS = np.zeros(S, dtype=bool)
WALLS[[2, 7]] = True
TERMINAL = np.zeros(S, dtype=bool)
TERMINAL[[13, 14]] = True
GRID = ["S.#..", "..#..", "...HG"]


def centre(img: np.ndarray, s: int, cell: int = CELL) -> np.ndarray:
    r, c = divmod(s, COLS)
    return img[r * cell + cell // 2, c * cell + cell // 2].astype(int)


@pytest.mark.parametrize("cell", [16, 24])
def test_image_shapes_and_dtypes(cell: int) -> None:
    values = np.linspace(-1.0, 1.0, S)
    for img in (
        value_heatmap(values, ROWS, COLS, WALLS, cell=cell),
        error_heatmap(np.abs(values), ROWS, COLS, WALLS, cell=cell),
        policy_arrows(np.arange(S) % 4, ROWS, COLS, WALLS, TERMINAL, cell=cell),
    ):
        assert img.dtype == np.uint8
        assert img.shape == (ROWS * cell, COLS * cell, 3)


def test_value_heatmap_colours() -> None:
    values = np.arange(S, dtype=float)
    img = value_heatmap(values, ROWS, COLS, WALLS)
    # Walls are dark grey, whatever their value.
    assert centre(img, 2).tolist() == [64, 64, 64]
    # Viridis-like: brightness grows with the value (dark purple -> yellow).
    open_states = [s for s in range(S) if not WALLS[s]]
    brightness = [centre(img, s).sum() for s in open_states]
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(brightness))
    assert centre(img, 0).tolist() == [68, 1, 84]
    assert centre(img, S - 1).tolist() == [253, 231, 37]
    # Fixed bounds: the same value gets the same colour whatever the others are.
    a = value_heatmap(values, ROWS, COLS, WALLS, vmin=0.0, vmax=20.0)
    b = value_heatmap(values * 0 + 5.0, ROWS, COLS, WALLS, vmin=0.0, vmax=20.0)
    assert centre(a, 5).tolist() == centre(b, 5).tolist()


def test_error_heatmap_zero_is_white() -> None:
    err = np.zeros(S)
    err[4] = 2.0
    err[9] = 1.0
    img = error_heatmap(err, ROWS, COLS, WALLS)
    assert centre(img, 0).tolist() == [255, 255, 255]
    assert centre(img, 4).tolist() == [103, 0, 13]
    mid = centre(img, 9)
    assert mid.sum() < 3 * 255 and mid.sum() > 103
    assert centre(img, 7).tolist() == [64, 64, 64]


def test_arrows_differ_by_action_and_point_the_right_way() -> None:
    policy = np.array([0, 1, 0, 2, 3] + [0] * 10)
    img = policy_arrows(policy, ROWS, COLS, WALLS, TERMINAL, grid=GRID).astype(int)
    tiles = {
        a: img[1:CELL, s * CELL + 1 : (s + 1) * CELL] for a, s in [(0, 0), (1, 1), (2, 3), (3, 4)]
    }
    ink = {a: (t.sum(axis=2) < 300) for a, t in tiles.items()}
    for a in range(4):
        assert ink[a].sum() > 10
        for b in range(a + 1, 4):
            assert not np.array_equal(ink[a], ink[b])
    half = (CELL - 1) // 2
    # The head holds more ink than the shaft's tail: up has more ink in its top half, etc.
    assert ink[0][:half].sum() > ink[0][half:].sum()
    assert ink[2][half:].sum() > ink[2][:half].sum()
    assert ink[1][:, half:].sum() > ink[1][:, :half].sum()
    assert ink[3][:, :half].sum() > ink[3][:, half:].sum()
    # Terminal cells are filled, G green and H red, no arrow; walls dark grey.
    g, h = centre(img, 14), centre(img, 13)
    assert g[1] > g[0] and g[1] > g[2]
    assert h[0] > h[1] and h[0] > h[2]
    assert centre(img, 7).tolist() == [64, 64, 64]


def test_text_values_grid() -> None:
    values = np.arange(S) / 3.0
    text = text_values(values, ROWS, COLS, WALLS)
    lines = text.split("\n")
    assert len(lines) == ROWS
    assert [len(line.split()) for line in lines] == [COLS] * ROWS
    assert lines[0].split() == ["0.00", "0.33", "#", "1.00", "1.33"]
    assert len({len(line) for line in lines}) == 1


def test_text_policy_grid() -> None:
    policy = np.array([1, 2, 0, 3, 0, 0, 1, 0, 2, 2, 1, 1, 0, 0, 0])
    assert text_policy(policy, ROWS, COLS, WALLS, TERMINAL, grid=GRID) == (
        "→ ↓ # ← ↑\n↑ → # ↓ ↓\n→ → ↑ H G"
    )
    assert text_policy(policy, ROWS, COLS, WALLS, TERMINAL).split("\n")[2] == "→ → ↑ T T"


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="15 values"):
        value_heatmap(np.zeros(14), ROWS, COLS, WALLS)
