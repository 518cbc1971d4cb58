"""Tabular algorithms through the installed CLI: every algo x discrete env in one multirun,
value iteration's TensorBoard output (residual per sweep, grid images), `rltrain eval`'s
terminal view, and one clear line for each impossible input."""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from rltrain.envs.render_grid import BAR_WIDTH, CELL, MARK_RGB

ALGOS = ("q_learning", "sarsa", "expected_sarsa", "value_iteration", "policy_iteration")
ENVS = ("gridworld", "traffic_light", "frozen_lake", "cliff_walking", "taxi")
GRID_IMAGES = ("values/v_heatmap", "policy/greedy_arrows", "values/v_error_vs_optimal")
HEAT_MAPS = ("values/v_heatmap", "values/v_error_vs_optimal")  # these two have a colour bar
BUDGET = 2000  # steps for the learners, the sweep cap for the planners

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def all_runs(
    run_cli: CliRunner,
    tmp_path_factory: pytest.TempPathFactory,
    find_run_dirs: Callable[[Path], list[Path]],
    summary_of: Callable[[Path], dict[str, Any]],
) -> dict[tuple[str, str], Path]:
    """All 25 combinations in ONE multirun (one process start instead of 25), tiny budgets."""
    cwd = tmp_path_factory.mktemp("tabular_multirun")
    result = run_cli(
        [
            "-m", f"algo={','.join(ALGOS)}", f"env={','.join(ENVS)}", f"total_steps={BUDGET}",
            "eval_episodes=2", "logger=none", "checkpoint_interval=0", "logger.progress=none",
        ],
        cwd,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = {}
    for run_dir in find_run_dirs(cwd / "multirun"):
        if (run_dir / "summary.json").is_file():
            summary = summary_of(run_dir)
            runs[summary["algo"], summary["env"]] = run_dir
    return runs


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", ALGOS)
def test_every_tabular_algo_runs_on_every_discrete_env(
    algo: str,
    env: str,
    all_runs: dict[tuple[str, str], Path],
    summary_of: Callable[[Path], dict[str, Any]],
) -> None:
    assert (algo, env) in all_runs, f"no finished run for algo={algo} env={env}"
    summary = summary_of(all_runs[algo, env])
    assert summary["eval_episodes"] == 2
    assert np.isfinite(summary["eval_return_mean"])
    if algo in ("value_iteration", "policy_iteration"):
        # Planners count one step per sweep and stop at convergence (one stopped by the cap
        # before it fails instead): value iteration needs 1,765 sweeps on the never-ending
        # traffic light with gamma 0.99, 438 on slippery FrozenLake, a few dozen elsewhere.
        assert 1 <= summary["steps"] < BUDGET, summary["steps"]
    else:
        assert summary["steps"] == BUDGET


def test_eval_prints_the_value_grid_and_the_arrow_policy(
    all_runs: dict[tuple[str, str], Path], run_cli: CliRunner
) -> None:
    run_dir = all_runs["q_learning", "gridworld"]
    result = run_cli(["eval", str(run_dir), "--episodes", "2"], run_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "V = max_a Q(s, a):" in out and "greedy policy:" in out
    values = out.split("V = max_a Q(s, a):\n")[1].split("\n\n")[0].splitlines()
    assert len(values) == 4 and all(len(row.split()) == 4 for row in values), values
    policy = out.split("greedy policy:\n")[1].splitlines()[:4]
    # 4x4 default map: the trap H and the goal G in the bottom-right corner, arrows elsewhere.
    assert policy[3].split()[2:] == ["H", "G"], policy
    arrows = [c for row in policy for c in row.split() if c not in ("H", "G")]
    assert len(arrows) == 14 and set(arrows) <= set("↑→↓←"), policy


def test_value_iteration_logs_residuals_and_grid_images(
    run_cli: CliRunner,
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    summary_of: Callable[[Path], dict[str, Any]],
) -> None:
    result = run_cli(["algo=value_iteration", "env=gridworld", "eval_episodes=2"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    sweeps = summary_of(run_dir)["steps"]
    assert summary_of(run_dir)["eval_return_mean"] == 1.0  # the goal, every time

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    residuals = events.Scalars("values/bellman_residual")
    # One point per sweep, at step = sweep number, down to below algo.tol (1e-8).
    assert [e.step for e in residuals] == list(range(1, sweeps + 1))
    assert residuals[-1].value < 1e-8 < residuals[0].value
    assert events.Scalars("values/q_error_vs_optimal")[-1].value < 1e-6
    pictures = {}
    for tag in GRID_IMAGES:
        (image,) = events.Images(tag)
        pictures[tag] = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
        # readable: 64 px a cell, and the heat maps' colour bar beside the 4x4 grid
        width = 4 * CELL + (BAR_WIDTH if tag in HEAT_MAPS else 0)
        assert pictures[tag].shape == (4 * CELL, width, 3), (tag, pictures[tag].shape)
        # S (top left), H and G (the bottom row's last two cells) are framed in their colours
        for (r, c), char in (((0, 0), "S"), ((3, 2), "H"), ((3, 3), "G")):
            edge = pictures[tag][(r + 1) * CELL - 2, c * CELL + CELL // 2]
            assert edge.tolist() == list(MARK_RGB[char]), (tag, char, edge)
        # the colour bar: a strip of the colour map, not blank
        if tag in HEAT_MAPS:
            assert np.unique(pictures[tag][:, 4 * CELL + 15].reshape(-1, 3), axis=0).shape[0] > 8
    # converged: |V - V*| = 0 in every cell, whose fill is white (the number 0.00 is printed)
    error = pictures["values/v_error_vs_optimal"]
    assert (error[CELL - CELL // 8 :: CELL, CELL // 2 : 4 * CELL : CELL] == 255).all()

    # the numbers in the cells are V as `rltrain eval` prints it: cells printed alike carry the
    # same ink, cells printed differently not
    printed = run_cli(["eval", str(run_dir), "--episodes", "1"], workdir)
    assert printed.returncode == 0, printed.stdout + printed.stderr
    grid_text = printed.stdout.split("V = max_a Q(s, a):\n")[1].split("\n\n")[0]
    texts = [cell for row in grid_text.splitlines() for cell in row.split()]
    assert len(texts) == 16 and len(set(texts)) > 3, texts
    heat = pictures["values/v_heatmap"].astype(int)

    def ink(s: int) -> np.ndarray:
        """The cell's number: pixels far from its fill, in the band where the number is."""
        r, c = divmod(s, 4)
        tile = heat[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL]
        band = tile[CELL // 2 - 6 : CELL // 2 + 20, 8 : CELL - 8]
        return np.abs(band - tile[CELL - CELL // 8, CELL // 2]).sum(axis=2) > 150

    inks = [ink(s) for s in range(16)]
    for a in range(16):
        for b in range(a + 1, 16):
            differing = (inks[a] ^ inks[b]).sum()
            if texts[a] == texts[b]:
                assert differing <= 4, (texts[a], a, b, differing)
            else:
                assert differing >= 10, (texts[a], texts[b], a, b, differing)


BAD_INPUT = {
    "tabular_on_cartpole": (
        ["algo=q_learning", "env=cartpole"], [r"algo=q_learning", r"discrete", r"dqn", r"ppo"],
    ),
    "planner_without_model": (
        ["algo=value_iteration", "env=gym", "env.id=MountainCar-v0"],
        [r"algo=value_iteration", r"model", r"q_learning"],
    ),
    "layout_without_start": (
        ["algo=sarsa", "env=gridworld", "env.layout='..../...G'"], [r"env\.layout", r"'S'"],
    ),
    "ragged_layout": (
        ["algo=sarsa", "env=gridworld", "env.layout='S../..G.'"], [r"env\.layout", r"same length"],
    ),
    "unknown_layout": (
        ["algo=sarsa", "env=gridworld", "env.layout=bigmaze"],
        [r"bigmaze", r"4x4", r"cliff", r"maze8"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_tabular_input_is_one_clear_line(
    case: str,
    run_cli: CliRunner,
    workdir: Path,
    one_error_line: Callable[[subprocess.CompletedProcess[str]], str],
) -> None:
    args, patterns = BAD_INPUT[case]
    message = one_error_line(run_cli([*args, "total_steps=50", "eval_episodes=1"], workdir))
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert not list(workdir.rglob("summary.json"))
