"""Learning on env=recommender: linear bandits on the bandit view reach sub-linear regret,
Q-learning on the tabular view reaches the exact Q* of the simulator's own model, and DQN and PPO
on the features view beat the greedy next click.

Driven like the loop drives an algorithm (tests/learning/test_tabular_learning.py `drive`), with
the tuned presets applied as the CLI applies them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_tabular_learning import drive  # tests/learning is on sys.path (rootdir conftest)

from rltrain.blocks.dp import q_error_vs_optimal

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("algo", ["ucb", "thompson"])
def test_linear_bandits_have_sublinear_regret(algo: str, seed: int) -> None:
    # The preset's budget is 20k users; regret is the expected one (the env's click probability
    # of the best arm minus the chosen one's), summed. Linear regret would double from T/2 to T.
    bandit, _ = drive([f"algo={algo}", "env=recommender", "env.view=bandit", f"seed={seed}",
                       "total_steps=10000"])  # fmt: skip
    half = bandit.regret
    ctx = bandit.ctx
    while ctx.step < 20_000:
        ctx.step += bandit.iterate()
    assert half > 0
    assert bandit.regret / half < 1.5, f"regret {half:.1f} at 10k, {bandit.regret:.1f} at 20k"
    # and the per-arm linear models end close to the click model
    contexts = np.random.default_rng(seed).random((200, bandit.dim))
    env = ctx.env.unwrapped_envs[0].unwrapped
    truth = contexts[:, env.catalogue.category] * env.catalogue.quality
    predicted = contexts @ np.einsum("kij,kj->ki", bandit.a_inv, bandit.b).T
    best = np.argmax(truth, axis=1)
    chosen = np.argmax(predicted, axis=1)
    assert np.mean(truth[np.arange(200), chosen] / truth[np.arange(200), best]) > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_q_learning_reaches_q_star_on_the_tabular_view(seed: int) -> None:
    # The preset: uniform behaviour (off-policy Q-learning needs no greedy behaviour, and uniform
    # keeps every reachable pair visited), step size 1 / N(s, a)^OMEGA, gamma 0.9.
    algo, _ = drive(["algo=q_learning", "env=recommender", f"seed={seed}"])
    oracle = algo.info.oracle
    assert oracle.decision_mask.sum() == 30  # reachable states of the default tabular view
    error = q_error_vs_optimal(algo.q, oracle.q_star, oracle.decision_mask)
    assert error < 0.05, f"max |Q - Q*| = {error:.4f}"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_deep_agents_beat_the_greedy_click_on_the_features_view(
    algo: str, seed: int, run_cli: Any, tmp_path: Path, tb_scalars: Any, learning_run_dir: Any
) -> None:
    """Through the console script with the preset: the run's best checkpoint, chosen by
    eval/return_exact (its deterministic policy scored exactly on the simulator's model, so the
    choice carries no sampling noise), earns more clicks per session than the greedy next click
    (exact, 58.1)."""
    run = learning_run_dir(f"{algo}_features_{seed}")
    args = [f"algo={algo}", "env=recommender", "env.view=features", f"seed={seed}",
            f"hydra.run.dir={run}"]  # fmt: skip
    result = run_cli(args, tmp_path, timeout=3600)
    assert result.returncode == 0, result.stderr
    scalars = tb_scalars(run)
    exact = [value for _, value in scalars["eval/return_exact"]]
    greedy = scalars["eval/baseline_greedy"][-1][1]
    optimal = scalars["eval/baseline_optimal"][-1][1]
    assert greedy == pytest.approx(58.06, abs=0.01) and optimal == pytest.approx(73.74, abs=0.01)
    assert max(exact) > greedy, f"best {max(exact):.2f}, greedy {greedy:.2f}: {exact}"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_eval_return"] == pytest.approx(max(exact))
