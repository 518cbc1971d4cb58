"""Linear contextual bandits (algo=ucb, algo=thompson) and the recommender's bandit view: the
ridge statistics against a direct solve, the scores by hand, Thompson draws against their
stated mean and covariance, the view's click model, and the runs through the console script."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rltrain.algos.bandit import (
    argmax_random_ties,
    estimates,
    ridge_update,
    thompson_scores,
    ucb_scores,
)
from rltrain.config.algos import BanditConfig
from rltrain.config.envs import RecommenderConfig
from rltrain.envs.recommender import RecommenderEnv
from rltrain.errors import UserError


def test_sherman_morrison_updates_match_a_direct_ridge_solve() -> None:
    rng = np.random.default_rng(0)
    d, ridge = 4, 0.5
    a_inv, b = np.eye(d) / ridge, np.zeros(d)
    xs, rs = rng.random((30, d)), rng.random(30)
    for x, r in zip(xs, rs, strict=True):
        ridge_update(a_inv, b, x, float(r))
    a = ridge * np.eye(d) + xs.T @ xs
    np.testing.assert_allclose(a_inv, np.linalg.inv(a), atol=1e-12)
    np.testing.assert_allclose(b, xs.T @ rs, atol=1e-12)
    theta = np.linalg.solve(a, xs.T @ rs)
    got = estimates(a_inv[None], b[None], xs[:3])
    np.testing.assert_allclose(got[:, 0], xs[:3] @ theta, atol=1e-12)


def test_ucb_score_by_hand() -> None:
    # one arm, d = 2, A = I + x1 x1^T with x1 = (1, 0), reward 1: A = diag(2, 1), b = (1, 0),
    # theta = (0.5, 0). Context x = (1, 1): estimate 0.5, width sqrt(1/2 + 1) = sqrt(1.5).
    a_inv, b = np.eye(2), np.zeros(2)
    ridge_update(a_inv, b, np.array([1.0, 0.0]), 1.0)
    np.testing.assert_allclose(a_inv, np.diag([0.5, 1.0]))
    score = ucb_scores(a_inv[None], b[None], np.array([[1.0, 1.0]]), exploration=2.0)
    assert score[0, 0] == pytest.approx(0.5 + 2.0 * np.sqrt(1.5))
    # exploration 0 is the ridge estimate itself
    assert ucb_scores(a_inv[None], b[None], np.array([[1.0, 1.0]]), 0.0)[0, 0] == 0.5


def test_thompson_draws_have_the_posterior_mean_and_covariance() -> None:
    a_inv, b = np.eye(2), np.zeros(2)
    ridge_update(a_inv, b, np.array([1.0, 0.0]), 1.0)  # theta = (0.5, 0), A^-1 = diag(.5, 1)
    x = np.array([[1.0, 1.0]])
    rng = np.random.default_rng(1)
    draws = np.array([thompson_scores(a_inv[None], b[None], x, 0.5, rng)[0, 0]
                      for _ in range(20_000)])  # fmt: skip
    # theta~ . x ~ N(0.5, v^2 x^T A^-1 x) = N(0.5, 0.25 * 1.5)
    assert draws.mean() == pytest.approx(0.5, abs=0.015)
    assert draws.var() == pytest.approx(0.25 * 1.5, rel=0.05)


def test_ties_are_broken_uniformly() -> None:
    rng = np.random.default_rng(0)
    picks = argmax_random_ties(np.zeros((3000, 3)), rng)
    counts = np.bincount(picks, minlength=3)
    assert counts.min() > 900
    assert (argmax_random_ties(np.array([[0.0, 2.0, 1.0]]), rng) == 1).all()


def test_bandit_view_clicks_are_linear_in_the_context() -> None:
    cfg = RecommenderConfig(view="bandit")
    env = RecommenderEnv(cfg)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (8,) and env.n_items == 16
    cat = env.catalogue
    expected = obs[cat.category].astype(np.float64) * cat.quality
    np.testing.assert_allclose(env.arm_means(), expected, rtol=1e-6)
    # one-step episodes: every recommendation ends the user's session
    _, reward, terminated, truncated, _ = env.step(0)
    assert terminated and not truncated and reward in (0.0, 1.0)
    # the click frequency of an arm is its mean
    env.reset(seed=4)
    clicks = []
    for _ in range(4000):
        env.reset()
        mean = env.arm_means()[5]
        clicks.append(float(env.step(5)[1]) - mean)
    assert abs(np.mean(clicks)) < 0.02
    base = env.baselines()
    assert set(base) == {"random", "greedy"} and base["greedy"] > base["random"] > 0


def test_bandit_view_checked_by_gymnasium() -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(RecommenderEnv(RecommenderConfig(view="bandit")), skip_render_check=True)


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [({"exploration": -1.0}, r"algo\.exploration=-1\.0 must be"),
     ({"ridge": 0.0}, r"algo\.ridge=0\.0 must be positive")],
)  # fmt: skip
def test_bad_bandit_settings(changes: dict[str, float], pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        replace(BanditConfig(), **changes)


def test_context_noise_is_a_probability() -> None:
    with pytest.raises(UserError, match=r"env\.context_noise=2\.0"):
        RecommenderEnv(RecommenderConfig(view="bandit", context_noise=2.0))


@pytest.mark.parametrize("algo", ["ucb", "thompson"])
def test_bandit_runs_through_the_cli_and_logs_regret(
    algo: str, run_cli: Any, tb_scalars: Any, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = [f"algo={algo}", "env=recommender", "env.view=bandit", "total_steps=3000",
            "eval_episodes=200", "logger.log_interval=500", f"hydra.run.dir={run}"]  # fmt: skip
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == 3000
    scalars = tb_scalars(run)
    regret = [v for _, v in scalars["bandit/regret"]]
    assert len(regret) >= 3 and regret == sorted(regret) and regret[-1] > 0
    assert scalars["values/q_error_vs_optimal"][-1][1] < scalars["values/q_error_vs_optimal"][0][1]
    greedy = scalars["eval/baseline_greedy"][-1][1]
    assert scalars["eval/baseline_random"][-1][1] < greedy
    # 3,000 users are enough to beat a random recommendation clearly
    assert scalars["eval/return_mean"][-1][1] > scalars["eval/baseline_random"][-1][1]
    evaluated = run_cli(["eval", str(run), "--episodes", "500"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "greedy" in evaluated.stdout and "random" in evaluated.stdout
