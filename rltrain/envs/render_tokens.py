"""Sample completions as a picture: one row per completion, each token in a cell coloured by
the value estimate of the state it was chosen in (V, viridis) and below it by its advantage
(A, blue for negative, white at 0, red for positive), the prompt on the left and the reward on
the right. Pure numpy plus Pillow's default font (Pillow comes with tensorboard)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rltrain.envs.render_grid import VIRIDIS, colormap

# Diverging blue -> white -> red for advantages: the sign is what one reads first.
_BLUE_WHITE_RED = np.array(
    [[33, 102, 172], [146, 197, 222], [255, 255, 255], [244, 165, 130], [178, 24, 43]],
    dtype=np.float64,
)
CELL_W, CELL_H, LABEL_W, REWARD_W = 64, 18, 96, 64


@dataclass(frozen=True)
class TokenRow:
    """One sampled completion: its prompt, its tokens as text, per-token V and A (None where the
    algorithm has no per-token estimate) and the completion's reward."""

    prompt: str
    tokens: Sequence[str]
    values: Sequence[float] | None
    advantages: Sequence[float]
    reward: float


def token_heatmap(rows: Sequence[TokenRow]) -> np.ndarray:
    """[H, W, 3] uint8: two strips per completion (V above, A below). V's colours span the
    smallest to the largest V shown; A's span -max|A| to +max|A|, so white is always 0."""
    from PIL import Image, ImageDraw

    width = max([len(r.tokens) for r in rows] + [1])
    values = [v for r in rows if r.values is not None for v in r.values]
    v_lo, v_hi = (min(values), max(values)) if values else (0.0, 1.0)
    a_max = max([abs(a) for r in rows for a in r.advantages] + [1e-9])
    image = Image.new("RGB", (LABEL_W + width * CELL_W + REWARD_W, 2 * CELL_H * len(rows) + 4),
                      "white")  # fmt: skip
    draw = ImageDraw.Draw(image)
    for i, row in enumerate(rows):
        top = 2 * CELL_H * i + 2
        draw.text((4, top + CELL_H // 2), row.prompt, fill="black")
        draw.text((LABEL_W + width * CELL_W + 6, top + CELL_H // 2), f"R {row.reward:.2f}",
                  fill="black")  # fmt: skip
        for j, token in enumerate(row.tokens):
            left = LABEL_W + j * CELL_W
            strips = []
            if row.values is not None:
                t = (row.values[j] - v_lo) / (v_hi - v_lo) if v_hi > v_lo else 0.5
                strips.append((colormap(np.array(t), VIRIDIS), f"{token} {row.values[j]:.2f}"))
            else:
                strips.append((np.array([235.0, 235.0, 235.0]), token))
            a = row.advantages[j]
            strips.append((colormap(np.array(0.5 + 0.5 * a / a_max), _BLUE_WHITE_RED), f"{a:+.2f}"))
            for k, (rgb, label) in enumerate(strips):
                box = (left, top + k * CELL_H, left + CELL_W - 1, top + (k + 1) * CELL_H - 1)
                fill = tuple(int(c) for c in rgb)
                draw.rectangle(box, fill=fill, outline="white")
                dark = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] < 128
                draw.text((left + 3, box[1] + 3), label, fill="white" if dark else "black")
    return np.asarray(image, dtype=np.uint8)


def token_table(rows: Sequence[TokenRow]) -> str:
    """The same rows as text, for the terminal and TensorBoard's Text tab (markdown table)."""
    lines = ["| prompt | completion | R | V per token | A per token |", "|---|---|---|---|---|"]
    for row in rows:
        v = " ".join(f"{x:.2f}" for x in row.values) if row.values is not None else "-"
        a = " ".join(f"{x:+.2f}" for x in row.advantages)
        lines.append(f"| {row.prompt} | {' '.join(row.tokens)} | {row.reward:.2f} | {v} | {a} |")
    return "\n".join(lines)
