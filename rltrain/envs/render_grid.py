"""Images and text of tabular values and policies on a grid (numpy, and Pillow's default font for
the numbers: Pillow comes with tensorboard; no matplotlib).

States are indexed like rltrain's gridworld: ``s = row * cols + col``. Images are uint8 HxWx3
arrays, ready for TensorBoard's ``add_image(..., dataformats="HWC")``: the grid is
``[rows * cell, cols * cell]``; the heat maps add a colour bar on the right (``BAR_WIDTH`` more
columns) and print each cell's value, and every picture marks the map's special cells (S start,
G goal, H trap) with their letter in the cell's corner and a coloured frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CELL = 64  # pixels per cell: room for a value such as -13.00 in a readable font
BAR_WIDTH = 80  # the colour bar beside a heat map: gap, strip and its tick labels
WALL_RGB = np.array([64, 64, 64], dtype=np.uint8)
GRID_LINE_RGB = np.array([255, 255, 255], dtype=np.uint8)
# frames of the marked cells: start blue, goal green, trap red
MARK_RGB = {"S": (30, 100, 230), "G": (40, 170, 60), "H": (215, 40, 40)}
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


def format_value(value: float) -> str:
    """How a cell's value is printed, in the pictures and the text grid: 2 decimals (a value
    that rounds to zero prints as 0.00, not -0.00)."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def format_error(value: float) -> str:
    """How an error |V - V*| is printed: 2 significant digits (0.0042, 0.37, 1.2), so that the
    small errors the colour scale shows are not all printed as 0.00; below 1e-6, the rounding
    of float32 values of order one, it is 0."""
    return "0" if abs(value) < 1e-6 else f"{value:.2g}"


def _font(size: int) -> Any:
    """Pillow's default font at `size` pixels (a bitmap font of fixed size on Pillow < 10.1)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _ink(rgb: Sequence[float]) -> str:
    """Black on light backgrounds, white on dark ones (by luma), so every number stays legible."""
    return "white" if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 128 else "black"


def mark_cells(image: np.ndarray, grid: Sequence[str] | None, cell: int) -> np.ndarray:
    """The map's S, G and H cells of a grid picture: the letter in the top-left corner of the
    cell and a frame in its colour (MARK_RGB). Returns a new array; no-op without `grid`."""
    if grid is None:
        return image
    from PIL import Image, ImageDraw

    picture = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(picture)
    font = _font(max(10, cell // 4))
    width = max(2, cell // 20)
    for r, row in enumerate(grid):
        for c, char in enumerate(row):
            if char not in MARK_RGB:
                continue
            x, y = c * cell, r * cell
            draw.rectangle((x + 1, y + 1, x + cell - 1, y + cell - 1), outline=MARK_RGB[char],
                           width=width)  # fmt: skip
            x0, y0, size = x + width + 1, y + width + 1, cell // 4
            box = (x0, y0, x0 + size + 1, y0 + size + 2)
            draw.rectangle(box, fill=MARK_RGB[char])
            draw.text((box[0] + 2, box[1] + 1), char, fill="white", font=font)
    return np.asarray(picture, dtype=np.uint8)


def _annotated_heatmap(
    values: np.ndarray, t: np.ndarray, anchors: np.ndarray, rows: int, cols: int,
    wall_mask: np.ndarray, cell: int, grid: Sequence[str] | None,
    value_at: Callable[[float], float], show: Callable[[float], str] = format_value,
) -> np.ndarray:  # fmt: skip
    """The coloured grid (colour position `t` in [0, 1] per cell) with each open cell's value
    printed in it (as `show` writes it), the marks of `grid`, and a colour bar on the right whose
    ticks are labelled with value_at(t), the value that colour position stands for."""
    from PIL import Image, ImageDraw

    walls = np.asarray(wall_mask, dtype=bool)
    colors = np.round(colormap(t, anchors))
    colors[walls] = WALL_RGB
    grid_img = mark_cells(_upscale(colors, rows, cols, cell), grid, cell)
    height = rows * cell
    picture = Image.new("RGB", (cols * cell + BAR_WIDTH, height), "white")
    picture.paste(Image.fromarray(grid_img), (0, 0))
    draw = ImageDraw.Draw(picture)
    font = _font(max(10, cell // 4))
    for s in np.flatnonzero(~walls):
        r, c = divmod(int(s), cols)
        centre = (c * cell + cell // 2, r * cell + cell // 2 + cell // 10)
        draw.text(centre, show(values[s]), fill=_ink(colors[s]), font=font, anchor="mm")
    # the bar: a vertical strip of the colour map, top = high, with the bounds and the middle
    left, strip = cols * cell + 8, 14
    ramp = colormap(np.linspace(1.0, 0.0, height), anchors)
    bar = np.repeat(np.round(ramp)[:, None, :], strip, axis=1).astype(np.uint8)
    picture.paste(Image.fromarray(bar), (left, 0))
    tick_font = _font(12)
    ticks = [(0, "lt", value_at(1.0)), (height, "lb", value_at(0.0))]
    if height >= 96:
        ticks.append((height // 2, "lm", value_at(0.5)))
    for y, anchor, value in ticks:
        draw.line((left + strip, min(y, height - 1), left + strip + 3, min(y, height - 1)),
                  fill="black")  # fmt: skip
        draw.text((left + strip + 5, y), show(value), fill="black", font=tick_font,
                  anchor=anchor)  # fmt: skip
    return np.asarray(picture, dtype=np.uint8)


def value_heatmap(
    values: np.ndarray,
    rows: int,
    cols: int,
    wall_mask: np.ndarray,
    cell: int = CELL,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    grid: Sequence[str] | None = None,
) -> np.ndarray:
    """Viridis-like heat map of V (low = dark purple, high = yellow), walls dark grey, the value
    printed in every open cell, S/G/H marked when `grid` (the map) is given, and a colour bar.

    The colour scale spans [vmin, vmax], by default the range of the non-wall values; pass
    fixed bounds (e.g. those of V*) to keep colours comparable across training steps.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    _check_shapes(values, rows, cols, wall_mask)
    open_values = values[~np.asarray(wall_mask, dtype=bool)]
    lo = float(open_values.min(initial=0.0)) if vmin is None else vmin
    hi = float(open_values.max(initial=0.0)) if vmax is None else vmax
    t = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    return _annotated_heatmap(
        values, t, VIRIDIS, rows, cols, wall_mask, cell, grid,
        lambda x: lo + x * (hi - lo) if hi > lo else lo,
    )  # fmt: skip


def error_heatmap(
    abs_error: np.ndarray,
    rows: int,
    cols: int,
    wall_mask: np.ndarray,
    cell: int = CELL,
    *,
    vmax: float | None = None,
    grid: Sequence[str] | None = None,
) -> np.ndarray:
    """Sequential map of |V - V*|: 0 is white, `vmax` (default: the largest error) dark red,
    each error printed in its cell, S/G/H marked when `grid` is given, and a colour bar.

    The colour position is t = sqrt(|V - V*| / vmax): a linear scale left every error much
    below the largest one white, while t = sqrt(0.1) = 0.32 shows a tenth of it in orange.
    """
    err = np.abs(np.asarray(abs_error, dtype=np.float64).reshape(-1))
    _check_shapes(err, rows, cols, wall_mask)
    hi = float(err[~np.asarray(wall_mask, dtype=bool)].max(initial=0.0)) if vmax is None else vmax
    t = np.sqrt(err / hi) if hi > 0 else np.zeros_like(err)
    return _annotated_heatmap(
        err, t, _WHITE_REDS, rows, cols, wall_mask, cell, grid, lambda x: hi * x * x, format_error
    )


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
    cell: int = CELL,
    *,
    grid: Sequence[str] | None = None,
) -> np.ndarray:
    """Arrows of a deterministic policy (0=up, 1=right, 2=down, 3=left) on a light background.

    Walls are dark grey; terminal cells carry no arrow and are filled: green for a goal 'G'
    and red for a trap 'H' when `grid` (the gridworld map) is given, amber otherwise; with
    `grid` the S, G and H cells are also marked as in the heat maps.
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
    return mark_cells(np.ascontiguousarray(img), grid, cell)


def text_values(values: np.ndarray, rows: int, cols: int, wall_mask: np.ndarray) -> str:
    """V as a text grid, 2 decimals, right-aligned columns, '#' for walls; one line per row."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    _check_shapes(values, rows, cols, wall_mask)
    walls = np.asarray(wall_mask, dtype=bool)
    cells = ["#" if walls[s] else format_value(values[s]) for s in range(rows * cols)]
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
