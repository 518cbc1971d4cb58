"""The policy-gradient family learns with its tuned presets (rltrain/tuned/).

Slow (minutes per run on 2 cores): `python -m pytest -m slow tests/learning/test_pg_learning.py`.

* REINFORCE (with baseline), A2C and A3C solve CartPole-v1 for seeds 0-2: the final deterministic
  10-episode evaluation returns at least 475 on average.
* REINFORCE's logged gradient variance is lower with the baseline than without, on the same
  batches, averaged over each run.
* PPO and A2C on Pendulum-v1 improve from the random policy's return (about -1200) to better
  than -400.

Each run prints steps and wall time to "solved" (the mean of the last 10 training returns first
>= 475, as `make bench` measures it) for the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rltrain.config.store import compose_run_config
from rltrain.runner.loop import train


def compose_run(overrides: list[str]) -> object:
    return compose_run_config(overrides)


def scalars(run_dir: Path, tag: str) -> list[tuple[float, int, float]]:
    """(wall_time, step, value) of a scalar tag, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: list[tuple[float, int, float]] = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            out += [(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]
    return sorted(out, key=lambda e: e[1])


def solved_at(run_dir: Path, threshold: float = 475.0) -> tuple[int, float] | None:
    """(step, seconds since the first logged episode... of training) where the mean of the last
    10 training returns first reaches the threshold."""
    events = scalars(run_dir, "charts/episodic_return")
    for i in range(9, len(events)):
        if np.mean([v for _, _, v in events[i - 9 : i + 1]]) >= threshold:
            return events[i][1], events[i][0]
    return None


def run(algo: str, env: str, seed: int, run_dir: Path) -> tuple[float, dict]:
    cfg = compose_run(
        [f"algo={algo}", f"env={env}", f"seed={seed}", "device=cpu", "logger.progress=none"]
    )
    import time

    start = time.time()
    eval_return = train(cfg, run_dir)  # type: ignore[arg-type]
    summary = json.loads((run_dir / "summary.json").read_text())
    solved = solved_at(run_dir)
    where = "not solved" if solved is None else (
        f"solved at {solved[0]:,} steps, {solved[1] - start:.1f} s"
    )
    print(
        f"\n{algo}/{env} seed {seed}: eval {eval_return:.1f}, {where}; "
        f"{summary['steps']:,} steps in {summary['wall_time']:.1f} s",
        flush=True,
    )
    return eval_return, summary


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("algo", ["reinforce", "a2c", "a3c"])
def test_solves_cartpole_with_the_tuned_preset(algo: str, seed: int, tmp_path: Path) -> None:
    eval_return, summary = run(algo, "cartpole", seed, tmp_path)
    assert summary["steps"] >= summary["total_steps"]
    if algo == "a3c":
        # asynchronous: no two runs are alike, and the preset keeps the best evaluated policy
        # (checkpoints/best.pt), as DQN's does
        assert summary["best_eval_return"] >= 475.0, summary
    else:
        assert eval_return >= 475.0, summary
    if algo == "reinforce":
        with_baseline = [v for _, _, v in scalars(tmp_path, "policy/grad_variance")]
        without = [v for _, _, v in scalars(tmp_path, "policy/grad_variance_no_baseline")]
        assert len(with_baseline) == len(without) > 10
        ratio = float(np.mean(with_baseline) / np.mean(without))
        print(
            f"reinforce seed {seed}: mean grad variance {np.mean(with_baseline):.4g} with the "
            f"baseline, {np.mean(without):.4g} without (ratio {ratio:.3f})",
            flush=True,
        )
        assert ratio < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_improves_on_pendulum_with_the_tuned_preset(algo: str, seed: int, tmp_path: Path) -> None:
    eval_return, summary = run(algo, "pendulum", seed, tmp_path)
    returns = [v for _, _, v in scalars(tmp_path, "charts/episodic_return")]
    first = float(np.mean(returns[:10]))
    print(f"{algo}/pendulum seed {seed}: first 10 training episodes {first:.0f}, "
          f"final eval {eval_return:.0f}")
    assert first < -900.0  # it starts from the random policy's level ...
    assert eval_return > -400.0, summary  # ... and ends far above it
