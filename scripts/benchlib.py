"""Shared pieces of `make bench`: run rltrain and Stable-Baselines3 side by side, as processes.

Both are timed the same way: from the moment this script launches the process until the mean of
the last 10 training-episode returns first reaches the threshold ("time to solved"), so start-up
(imports, env and network construction) counts for both.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


@dataclass
class RunResult:
    name: str
    seed: int
    time_to_solved: float | None  # seconds from process launch
    steps_to_solved: int | None
    sps: float  # training env steps per second over the whole run
    eval_return: float
    wall_time: float  # whole process


def solved_at(
    events: list[tuple[float, int, float]], threshold: float, window: int = 10
) -> tuple[float, int] | None:
    """(wall_time, step) of the first episode where the mean of the last `window` returns is at
    least `threshold`.

    `events` are (wall_time, step, episodic_return) in the order the episodes ended.
    """
    recent: list[float] = []
    for wall, step, value in events:
        recent.append(value)
        if len(recent) > window:
            recent.pop(0)
        if len(recent) == window and sum(recent) / window >= threshold:
            return wall, step
    return None


def read_returns(run_dir: Path) -> list[tuple[float, int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events: list[tuple[float, int, float]] = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if "charts/episodic_return" in acc.Tags()["scalars"]:
            scalars = acc.Scalars("charts/episodic_return")
            events += [(e.wall_time, e.step, e.value) for e in scalars]
    return sorted(events)


def run_rltrain(
    name: str, overrides: list[str], seed: int, threshold: float, workdir: Path | None = None
) -> RunResult:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="rltrain-bench-"))
    run_dir = workdir / f"{name}-{seed}"
    command = [
        str(BIN / "rltrain"), *overrides, f"seed={seed}", "logger.progress=none",
        f"hydra.run.dir={run_dir}",
    ]
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=workdir)
    wall = time.time() - start
    summary = json.loads((run_dir / "summary.json").read_text())
    solved = solved_at(read_returns(run_dir), threshold)
    return RunResult(
        name, seed,
        None if solved is None else solved[0] - start,
        None if solved is None else solved[1],
        summary["sps"], summary["eval_return_mean"], wall,
    )


def run_sb3(
    name: str, algo: str, env_id: str, seed: int, threshold: float, preset: str
) -> RunResult:
    """Runs scripts/sb3_runner.py in a fresh process; it reports wall-clock times of its own."""
    command = [
        sys.executable, str(HERE / "sb3_runner.py"), "--algo", algo, "--env", env_id,
        "--seed", str(seed), "--threshold", str(threshold), "--preset", preset,
    ]
    start = time.time()
    out = subprocess.run(command, check=True, capture_output=True, text=True,
                         env={**os.environ,
                              "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")})
    wall = time.time() - start
    data = json.loads(out.stdout.strip().splitlines()[-1])
    solved = data["solved_wall"]
    return RunResult(
        name, seed,
        None if solved is None else solved - start,
        data["solved_step"], data["sps"], data["eval_return"], wall,
    )


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def table(title: str, ours: list[RunResult], theirs: list[RunResult]) -> str:
    lines = [f"## {title}", "",
             "| run | seed | time to solved (s) | steps to solved | train steps/s | eval return "
             "| wall (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in ours + theirs:
        lines.append(
            f"| {r.name} | {r.seed} | {fmt(r.time_to_solved)} | {fmt(r.steps_to_solved)} | "
            f"{fmt(r.sps, 0)} | {fmt(r.eval_return)} | {fmt(r.wall_time)} |"
        )
    ours_t = median([r.time_to_solved for r in ours])
    theirs_t = median([r.time_to_solved for r in theirs])
    ours_s = median([r.sps for r in ours])
    theirs_s = median([r.sps for r in theirs])
    lines.append("")
    lines.append(
        f"median time to solved: {ours[0].name} {fmt(ours_t)} s, {theirs[0].name} {fmt(theirs_t)} s"
        + (f" -> {theirs_t / ours_t:.2f}x faster" if ours_t and theirs_t else "")
    )
    lines.append(
        f"median training steps/s: {fmt(ours_s, 0)} vs {fmt(theirs_s, 0)}"
        + (f" -> {ours_s / theirs_s:.2f}x" if ours_s and theirs_s else "")
    )
    solved_ours = sum(r.time_to_solved is not None for r in ours)
    solved_theirs = sum(r.time_to_solved is not None for r in theirs)
    lines.append(f"solved: {solved_ours}/{len(ours)} vs {solved_theirs}/{len(theirs)}")
    return "\n".join(lines)
