"""SAC, TD3 and DDPG learn Pendulum-v1 with their tuned presets (rltrain/tuned/*_pendulum.yaml,
RL Zoo's settings, 20k env steps).

Slow (minutes per seed on 2 shared cores):
`python -m pytest -m slow -s tests/learning/test_continuous_learning.py`.

* SAC and TD3: the final deterministic 10-episode evaluation is >= -200 for every seed 0-4.
* DDPG: >= -200 for at least 3 of the 5 seeds (it has no guard against the critic's
  overestimation, so some seeds may settle on a worse policy).

Each run prints its eval return and wall time for the report (docs/benchmarks.md). With
RLTRAIN_TEST_RUNS=DIR the runs are kept in DIR/<algo>_pendulum_s<seed> (DDPG:
DIR/ddpg_pendulum/seed<seed>), where
scripts/plot_q_bias_continuous.py reads the DDPG vs TD3 overestimation figure from them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rltrain.config.store import compose_run_config
from rltrain.runner.loop import train

pytestmark = pytest.mark.slow

SEEDS = range(5)
THRESHOLD = -200.0


def run(algo: str, seed: int, run_dir: Path) -> float:
    cfg = compose_run_config(
        [f"algo={algo}", "env=pendulum", f"seed={seed}", "device=cpu", "logger.progress=none"]
    )
    assert cfg.preset == f"{algo}_pendulum" and cfg.total_steps == 20_000
    start = time.time()
    eval_return = train(cfg, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    print(
        f"\n{algo}/pendulum seed {seed}: eval {eval_return:.1f} ± {summary['eval_return_std']:.1f}"
        f"; {summary['steps']:,} steps in {time.time() - start:.0f} s",
        flush=True,
    )
    return eval_return


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_sac_and_td3_reach_minus_200_on_pendulum(
    algo: str, seed: int, learning_run_dir: Callable[[str], Path]
) -> None:
    assert run(algo, seed, learning_run_dir(f"{algo}_pendulum_s{seed}")) >= THRESHOLD


def test_ddpg_reaches_minus_200_on_pendulum_for_3_of_5_seeds(
    learning_run_dir: Callable[[str], Path],
) -> None:
    root = learning_run_dir("ddpg_pendulum")  # one directory, a run per seed inside
    returns = [run("ddpg", seed, root / f"seed{seed}") for seed in SEEDS]
    print(f"\nddpg/pendulum evals: {[round(r, 1) for r in returns]}", flush=True)
    assert sum(r >= THRESHOLD for r in returns) >= 3, returns
