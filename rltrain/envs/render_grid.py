"""Images and text of tabular values and policies on a grid (pure numpy, no matplotlib).

States are indexed like rltrain's gridworld: ``s = row * cols + col``. Images are uint8
``[rows * cell, cols * cell, 3]`` arrays, ready for TensorBoard's ``add_image(...,
dataformats="HWC")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WALL_RGB = np.array([64, 64, 64], dtype=np.uint8)
GRID_LINE_RGB = np.array([255, 255, 255], dtype=np.uint8)
# Five anchor colours of matplotlib's viridis (#440154 #3b528b #21918c #5ec962 #fde725),
# interpolated linearly: close enough to viridis for a heat map, perceptually ordered.
VIRIDIS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)
# Sequential white -> orange -> dark red, so that an error of 0 is white.
_WHITE_REDS = np.array(
    [[255, 255, 255], [253, 174, 97], [215, 48, 39], [103, 0, 13]], dtype=np.float64
)
ARROW_CHARS = ("↑", "→", "↓", "←")


def colormap(t: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] to RGB by piecewise-linear interpolation between `anchors`."""
    t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0)
    pos = t * (len(anchors) - 1)
    lo = np.minimum(pos.astype(np.int64), len(anchors) - 2)
    frac = (pos - lo)[..., None]
    return anchors[lo] * (1.0 - frac) + anchors[lo + 1] * frac


def _check_shapes(values: np.ndarray, rows: int, cols: int, wall_mask: np.ndarray) -> None:
    if values.shape != (rows * cols,):
        raise ValueError(
            f"expected {rows * cols} values for a {rows}x{cols} grid, got shape {values.shape}"
        )
    if np.asarray(wall_mask).shape != (rows * cols,):
        raise ValueError(f"wall_mask must have shape ({rows * cols},)")


def _upscale(colors: np.ndarray, rows: int, cols: int, cell: int) -> np.ndarray:
    """[S, 3] cell colours -> [rows*cell, cols*cell, 3] uint8 with 1-px white grid lines."""
    grid = colors.reshape(rows, cols, 3).astype(np.uint8)
    img = np.repeat(np.repeat(grid, cell, axis=0), cell, axis=1)
    img[::cell, :] = GRID_LINE_RGB
    img[:, ::cell] = GRID_LINE_RGB
    return img


def _scalar_image(
    t: np.ndarray, anchors: np.ndarray, rows: int, cols: int, wall_mask: np.ndarray, cell: int
) -> np.ndarray:
    colors = colormap(t, anchors)
    colors[np.asarray(wall_mask, dtype=bool)] = WALL_RGB
    return _upscale(np.round(colors), rows, cols, cell)


def value_heatmap(
    values: np.ndarray,
    rows: int,
    cols: int,
    wall_mask: np.ndarray,
    cell: int = 24,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Viridis-like heat map of V (low = dark purple, high = yellow), walls dark grey.

    The colour scale spans [vmin, vmax], by default the range of the non-wall values; pass
    fixed bounds (e.g. those of V*) to keep colours comparable across training steps.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    _check_shapes(values, rows, cols, wall_mask)
    open_values = values[~np.asarray(wall_mask, dtype=bool)]
    lo = float(open_values.min(initial=0.0)) if vmin is None else vmin
    hi = float(open_values.max(initial=0.0)) if vmax is None else vmax
    t = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    return _scalar_image(t, VIRIDIS, rows, cols, wall_mask, cell)


def error_heatmap(
    abs_error: np.ndarray,
    rows: int,
    cols: int,
    wall_mask: np.ndarray,
    cell: int = 24,
    *,
    vmax: float | None = None,
) -> np.ndarray:
    """Sequential map of |V - V*|: 0 is white, `vmax` (default: the largest error) dark red."""
    err = np.abs(np.asarray(abs_error, dtype=np.float64).reshape(-1))
    _check_shapes(err, rows, cols, wall_mask)
    hi = float(err[~np.asarray(wall_mask, dtype=bool)].max(initial=0.0)) if vmax is None else vmax
    t = err / hi if hi > 0 else np.zeros_like(err)
    return _scalar_image(t, _WHITE_REDS, rows, cols, wall_mask, cell)


def _arrow_masks(cell: int) -> np.ndarray:
    """[4, cell, cell] bool masks of arrows pointing up, right, down, left (a shaft plus a head)."""
    yy, xx = np.mgrid[0:cell, 0:cell].astype(np.float64) + 0.5
    c = cell / 2.0
    half = cell * 0.36  # arrow half-length
    tip, head_base = c - half, c - half + cell * 0.3
    shaft = (np.abs(xx - c) <= max(cell * 0.06, 0.75)) & (yy >= head_base) & (yy <= c + half)
    # Head: a triangle whose half-width grows linearly from the tip to the base.
    head = (yy >= tip) & (yy <= head_base) & (np.abs(xx - c) <= (yy - tip) * 0.75 + 0.5)
    up = shaft | head
    # np.rot90 turns counter-clockwise: k=3 -> right, k=2 -> down, k=1 -> left.
    return np.stack([up, np.rot90(up, 3), np.rot90(up, 2), np.rot90(up, 1)])


def policy_arrows(
    policy: np.ndarray,
    rows: int,
    cols: int,
    wall_mask: np.ndarray,
    terminal_mask: np.ndarray,
    cell: int = 24,
    *,
    grid: Sequence[str] | None = None,
) -> np.ndarray:
    """Arrows of a deterministic policy (0=up, 1=right, 2=down, 3=left) on a light background.

    Walls are dark grey; terminal cells carry no arrow and are filled: green for a goal 'G'
    and red for a trap 'H' when `grid` (the gridworld map) is given, amber otherwise.
    """
    policy = np.asarray(policy).reshape(-1).astype(np.int64)
    _check_shapes(policy, rows, cols, wall_mask)
    walls = np.asarray(wall_mask, dtype=bool)
    terminal = np.asarray(terminal_mask, dtype=bool) & ~walls
    background = np.array([245, 245, 245], dtype=np.uint8)
    ink = np.array([20, 40, 120], dtype=np.uint8)
    # One tile per kind: 0-3 arrows, 4 wall, 5 terminal (amber), 6 goal, 7 trap.
    tiles = np.empty((8, cell, cell, 3), dtype=np.uint8)
    tiles[:] = background
    for a, mask in enumerate(_arrow_masks(cell)):
        tiles[a][mask] = ink
    tiles[4] = WALL_RGB
    tiles[5] = (240, 190, 60)
    tiles[6] = (90, 190, 90)
    tiles[7] = (220, 80, 70)
    kind = np.clip(policy, 0, 3)
    kind = np.where(walls, 4, kind)
    term_kind = np.full(rows * cols, 5)
    if grid is not None:
        chars = np.array([list(row) for row in grid]).reshape(-1)
        term_kind = np.where(chars == "G", 6, np.where(chars == "H", 7, 5))
    kind = np.where(terminal, term_kind, kind)
    # Assemble all cells at once: [rows, cols, cell, cell, 3] -> [rows*cell, cols*cell, 3].
    img = tiles[kind.reshape(rows, cols)].transpose(0, 2, 1, 3, 4)
    img = img.reshape(rows * cell, cols * cell, 3)
    img[::cell, :] = (200, 200, 200)
    img[:, ::cell] = (200, 200, 200)
    return np.ascontiguousarray(img)


def text_values(values: np.ndarray, rows: int, cols: int, wall_mask: np.ndarray) -> str:
    """V as a text grid, 2 decimals, right-aligned columns, '#' for walls; one line per row."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    _check_shapes(values, rows, cols, wall_mask)
    walls = np.asarray(wall_mask, dtype=bool)
    cells = ["#" if walls[s] else f"{values[s]:.2f}" for s in range(rows * cols)]
    width = max(len(x) for x in cells)
    return "\n".join(
        " ".join(x.rjust(width) for x in cells[r * cols : (r + 1) * cols]) for r in range(rows)
    )


def text_policy(
    policy: np.ndarray,
    rows: int,
    cols: int,
    wall_mask: np.ndarray,
    terminal_mask: np.ndarray,
    *,
    grid: Sequence[str] | None = None,
) -> str:
    """Policy as a text grid of arrows ↑ → ↓ ←, '#' for walls; terminals show their map
    character (G, H) when `grid` is given, else 'T'. One line per row."""
    policy = np.asarray(policy).reshape(-1).astype(np.int64)
    _check_shapes(policy, rows, cols, wall_mask)
    walls = np.asarray(wall_mask, dtype=bool)
    terminal = np.asarray(terminal_mask, dtype=bool)
    lines = []
    for r in range(rows):
        chars = []
        for c in range(cols):
            s = r * cols + c
            if walls[s]:
                chars.append("#")
            elif terminal[s]:
                chars.append(grid[r][c] if grid is not None else "T")
            else:
                chars.append(ARROW_CHARS[int(policy[s]) % 4])
        lines.append(" ".join(chars))
    return "\n".join(lines)
