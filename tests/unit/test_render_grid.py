from __future__ import annotations

import itertools

import numpy as np
import pytest

from rltrain.envs.render_grid import (
    BAR_WIDTH,
    MARK_RGB,
    error_heatmap,
    format_value,
    policy_arrows,
    text_policy,
    text_values,
    value_heatmap,
)

ROWS, COLS, CELL = 3, 5, 64
S = ROWS * COLS
WALLS = np.zeros(S, dtype=bool)
WALLS[[2, 7]] = True
TERMINAL = np.zeros(S, dtype=bool)
TERMINAL[[13, 14]] = True
GRID = ["S.#..", "..#..", "...HG"]


def centre(img: np.ndarray, s: int, cell: int = CELL) -> np.ndarray:
    r, c = divmod(s, COLS)
    return img[r * cell + cell // 2, c * cell + cell // 2].astype(int)


def fill(img: np.ndarray, s: int, cell: int = CELL) -> np.ndarray:
    """A heat-map cell's colour: below its centre, clear of the printed number and the marks."""
    r, c = divmod(s, COLS)
    return img[r * cell + cell - cell // 8, c * cell + cell // 2].astype(int)


@pytest.mark.parametrize("cell", [32, 64])
def test_image_shapes_and_dtypes(cell: int) -> None:
    values = np.linspace(-1.0, 1.0, S)
    for img, extra in (
        (value_heatmap(values, ROWS, COLS, WALLS, cell=cell), BAR_WIDTH),
        (error_heatmap(np.abs(values), ROWS, COLS, WALLS, cell=cell), BAR_WIDTH),
        (policy_arrows(np.arange(S) % 4, ROWS, COLS, WALLS, TERMINAL, cell=cell), 0),
    ):
        assert img.dtype == np.uint8
        assert img.shape == (ROWS * cell, COLS * cell + extra, 3)


def test_heatmap_prints_values_marks_cells_and_has_a_colour_bar() -> None:
    values = np.arange(S, dtype=float) / 7.0
    plain = value_heatmap(values, ROWS, COLS, WALLS)
    marked = value_heatmap(values, ROWS, COLS, WALLS, grid=GRID)
    # every open cell carries ink (its number) of the other luminance than its fill
    for s in np.flatnonzero(~WALLS):
        r, c = divmod(int(s), COLS)
        tile = plain[r * CELL + 1 : (r + 1) * CELL, c * CELL + 1 : (c + 1) * CELL].astype(int)
        assert (np.abs(tile - fill(plain, s)).sum(axis=2) > 200).sum() > 20, s
    # walls have no number: one flat grey
    r, c = divmod(2, COLS)
    wall = plain[r * CELL + 1 : (r + 1) * CELL, c * CELL + 1 : (c + 1) * CELL]
    assert (wall == 64).all()
    # S, G and H: a frame of their colour along the cell's bottom edge, none without the map
    for s, char in ((0, "S"), (14, "G"), (13, "H")):
        r, c = divmod(s, COLS)
        edge = marked[(r + 1) * CELL - 2, c * CELL + CELL // 2]
        assert edge.tolist() == list(MARK_RGB[char]), (char, edge)
        assert plain[(r + 1) * CELL - 2, c * CELL + CELL // 2].tolist() != list(MARK_RGB[char])
    # the colour bar runs from the highest value's colour (top) to the lowest's (bottom)
    strip = plain[:, COLS * CELL + 8 + 7].astype(int)
    assert strip[0].tolist() == fill(plain, S - 1).tolist()  # the largest value, yellow
    assert strip[-1].tolist() == fill(plain, 0).tolist()  # the smallest, dark purple


def test_cell_numbers_are_the_text_grid_values() -> None:
    assert format_value(0.8145) == "0.81" and format_value(-0.001) == "0.00"
    assert format_value(-13.0) == "-13.00"


def test_value_heatmap_colours() -> None:
    values = np.arange(S, dtype=float)
    img = value_heatmap(values, ROWS, COLS, WALLS)
    # Walls are dark grey, whatever their value.
    assert fill(img, 2).tolist() == [64, 64, 64]
    # Viridis-like: brightness grows with the value (dark purple -> yellow).
    open_states = [s for s in range(S) if not WALLS[s]]
    brightness = [fill(img, s).sum() for s in open_states]
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(brightness))
    assert fill(img, 0).tolist() == [68, 1, 84]
    assert fill(img, S - 1).tolist() == [253, 231, 37]
    # Fixed bounds: the same value gets the same colour whatever the others are.
    a = value_heatmap(values, ROWS, COLS, WALLS, vmin=0.0, vmax=20.0)
    b = value_heatmap(values * 0 + 5.0, ROWS, COLS, WALLS, vmin=0.0, vmax=20.0)
    assert fill(a, 5).tolist() == fill(b, 5).tolist()


def test_error_heatmap_zero_is_white() -> None:
    err = np.zeros(S)
    err[4] = 2.0
    err[9] = 1.0
    err[10] = 0.02  # a hundredth of the largest: sqrt scale, t = 0.1, still off-white
    img = error_heatmap(err, ROWS, COLS, WALLS)
    assert fill(img, 0).tolist() == [255, 255, 255]
    assert fill(img, 4).tolist() == [103, 0, 13]
    mid = fill(img, 9)
    assert mid.sum() < 3 * 255 and mid.sum() > 103
    assert fill(img, 10).sum() < 3 * 255 - 60
    assert fill(img, 7).tolist() == [64, 64, 64]


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


def test_errors_are_printed_to_two_significant_digits():
    """The |V - V*| map's small errors, which its colour scale shows, are not all 0.00."""
    from rltrain.envs.render_grid import format_error

    assert [format_error(v) for v in (0.0, 3e-9, 2e-6, 0.0042, 0.37, 1.234, 12.5)] == [
        "0", "0", "2e-06", "0.0042", "0.37", "1.2", "12"
    ]  # fmt: skip
