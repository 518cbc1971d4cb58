"""The sample-completion picture: geometry, and the colours that carry the meaning (A = 0 is
white, the sign of A picks blue or red, V spans viridis from its smallest to its largest)."""

from __future__ import annotations

import numpy as np

from rltrain.envs.render_tokens import (
    CELL_H,
    CELL_W,
    LABEL_W,
    REWARD_W,
    TokenRow,
    token_heatmap,
    token_table,
)

ROWS = [
    TokenRow(prompt="3 1 2", tokens=["1", "2", "3", "<eos>"], values=[0.0, 0.5, 1.0, 2.0],
             advantages=[0.0, 0.4, -0.4, 0.1], reward=1.0),
    TokenRow(prompt="1 0 1", tokens=["<eos>"], values=[0.25], advantages=[-0.2], reward=-0.17),
]


def _cell(image: np.ndarray, row: int, strip: int, col: int) -> tuple[int, ...]:
    """A pixel in the right part of a cell, clear of its label and of the white outline."""
    y = 2 * CELL_H * row + 2 + strip * CELL_H + CELL_H // 2
    x = LABEL_W + col * CELL_W + CELL_W - 5
    return tuple(int(c) for c in image[y, x])


def test_geometry_two_strips_per_completion_and_the_widest_completion_sets_the_width():
    image = token_heatmap(ROWS)
    assert image.dtype == np.uint8
    assert image.shape == (2 * CELL_H * 2 + 4, LABEL_W + 4 * CELL_W + REWARD_W, 3)


def test_colours_advantage_diverges_around_white_and_value_spans_viridis():
    image = token_heatmap(ROWS)
    assert _cell(image, 0, 1, 0) == (255, 255, 255)  # A = 0
    assert _cell(image, 0, 1, 1) == (178, 24, 43)  # A = +max|A|: darkest red
    assert _cell(image, 0, 1, 2) == (33, 102, 172)  # A = -max|A|: darkest blue
    assert _cell(image, 0, 0, 0) == (68, 1, 84)  # the smallest V: viridis' first colour
    assert _cell(image, 0, 0, 3) == (253, 231, 37)  # the largest V: its last
    r, g, b = _cell(image, 1, 1, 0)  # A = -0.2 = half of max|A|: a light blue
    assert b > r and (r, g, b) != (255, 255, 255)
    assert _cell(image, 1, 0, 1) == (255, 255, 255)  # no token there: background


def test_without_values_the_value_strip_is_grey():
    rows = [TokenRow(prompt="1", tokens=["2"], values=None, advantages=[0.5], reward=1.0)]
    image = token_heatmap(rows)
    assert _cell(image, 0, 0, 0) == (235, 235, 235)
    assert _cell(image, 0, 1, 0) == (178, 24, 43)


def test_table_one_line_per_completion_with_v_and_a_per_token():
    lines = token_table(ROWS).splitlines()
    assert lines[0] == "| prompt | completion | R | V per token | A per token |"
    v, a = "0.00 0.50 1.00 2.00", "+0.00 +0.40 -0.40 +0.10"
    assert lines[2] == f"| 3 1 2 | 1 2 3 <eos> | 1.00 | {v} | {a} |"
    assert lines[3] == "| 1 0 1 | <eos> | -0.17 | 0.25 | -0.20 |"
    no_values = TokenRow(prompt="1", tokens=["2"], values=None, advantages=[0.5], reward=1.0)
    assert token_table([no_values]).splitlines()[2] == "| 1 | 2 | 1.00 | - | +0.50 |"
