"""env=recommender: the click and leave model by hand, the tabular P against rollouts of the
simulator, the exact baselines, and value iteration against the greedy next-click policy."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from rltrain.blocks.dp import model_of, policy_evaluation, value_iteration
from rltrain.config.envs import RecommenderConfig
from rltrain.config.presets import env_key
from rltrain.envs.recommender import (
    RecommenderEnv,
    Users,
    click_probability,
    leave_probability,
    next_fatigue,
    table_size,
)
from rltrain.errors import UserError


def test_click_leave_and_fatigue_by_hand() -> None:
    # 0.8 * 0.5 * (1 - 0.25)^2 = 0.4 * 0.5625 = 0.225
    assert click_probability(0.8, 0.5, 0.25, 2) == pytest.approx(0.225)
    assert click_probability(0.8, 0.5, 0.25, 0) == pytest.approx(0.4)
    assert leave_probability(0.1, 0.15, 0) == pytest.approx(0.1)
    assert leave_probability(0.1, 0.15, 2) == pytest.approx(0.4)
    assert leave_probability(0.5, 0.3, 3) == 1.0  # capped
    assert next_fatigue((0, 1, 2), shown=0, max_fatigue=2) == (1, 0, 1)
    assert next_fatigue((2, 0, 1), shown=0, max_fatigue=2) == (2, 0, 0)


def test_outcomes_match_the_formulas() -> None:
    env = RecommenderEnv(RecommenderConfig())
    cat, cfg = env.catalogue, env.cfg
    segment, levels, misses, item = 1, (1, 0, 1), 2, 2
    c = int(cat.category[item])
    p = cat.interest[segment, c] * cat.quality[item] * (1 - cfg.fatigue) ** levels[c]
    leave = min(1.0, env.users.leave_base + env.users.leave_rate * misses)
    rows = env.outcomes(segment, levels, misses, item)
    assert sum(r[0] for r in rows) == pytest.approx(1.0)
    assert sum(r[0] for r in rows if r[2] == 1.0) == pytest.approx(p)
    assert sum(r[0] for r in rows if r[1] is None) == pytest.approx((1 - p) * leave)
    drifted = [r for r in rows if r[1] is not None and r[1][0] != segment]
    if int(cat.drift_to[c]) != segment:
        assert drifted[0][0] == pytest.approx(p * env.users.drift)
        assert drifted[0][1] == (int(cat.drift_to[c]), next_fatigue(levels, c, 1), 0)


@pytest.mark.parametrize("slate_size", [1, 2])
def test_tabular_P_matches_monte_carlo_rollouts(slate_size: int) -> None:
    """Frequencies of (next state, reward, terminated) from the simulator's step() equal P's
    probabilities within 5 standard errors, for several (state, action) pairs."""
    env = RecommenderEnv(RecommenderConfig(slate_size=slate_size))
    env.reset(seed=3)
    n = 6_000
    for state in (0, 17, 40, 70):
        for action in range(env.n_actions):
            counts: Counter[tuple[int, float, bool]] = Counter()
            segment, levels, misses = env._states[state]
            for _ in range(n):
                env.segment, env.levels, env.misses = segment, np.array(levels), misses
                env.left, env._elapsed = False, 0
                ns, r, term, _, _ = env.step(action)
                counts[(int(ns), float(r), bool(term))] += 1
            expected: Counter[tuple[int, float, bool]] = Counter()
            for prob, ns, r, term in env.P[state][action]:
                expected[(ns, r, term)] += prob
            assert set(counts) <= set(expected)
            for key, prob in expected.items():
                se = np.sqrt(prob * (1 - prob) / n)
                assert abs(counts[key] / n - prob) < 5 * se + 1e-9, (state, action, key)


def test_a_slate_is_read_in_order_and_clicked_at_most_once() -> None:
    env = RecommenderEnv(RecommenderConfig(slate_size=2))
    assert env.slates == [(0, 1), (0, 2), (1, 2)] and env.action_space.n == 3
    cat, cfg = env.catalogue, env.cfg
    segment, levels, misses = 0, (1, 0, 0), 1
    p = [cat.interest[segment, c] * cat.quality[c] * (1 - cfg.fatigue) ** levels[c]
         for c in (0, 1)]  # fmt: skip
    rows = env.outcomes(segment, levels, misses, env.slate_index[(0, 1)])
    assert sum(r[0] for r in rows) == pytest.approx(1.0)
    # a click on the first item, or on the second after passing the first
    assert sum(r[0] for r in rows if r[2] == 1.0) == pytest.approx(p[0] + (1 - p[0]) * p[1])
    leave = env.users.leave_base + env.users.leave_rate * misses
    assert sum(r[0] for r in rows if r[1] is None) == pytest.approx((1 - p[0]) * (1 - p[1]) * leave)
    # both shown categories gain a level (capped at 1), the third loses one
    assert {r[1][1] for r in rows if r[1] is not None} == {(1, 1, 0)}
    # (a slate of two is not worth more clicks per session: it tires two categories at once;
    # greedy gets 5.81 with slates of two against 6.21 with one item)
    assert env.baselines()["greedy"] < RecommenderEnv(RecommenderConfig()).baselines()["greedy"]
    features = RecommenderEnv(RecommenderConfig(view="features", n_categories=6, slate_size=2))
    features.reset(seed=0)
    top = np.argsort(-features.click_probabilities())[:2]
    assert features.slates[features.greedy_slate()] == tuple(sorted(top))


def test_default_table_size_and_start() -> None:
    env = RecommenderEnv(RecommenderConfig())
    assert env.observation_space.n == table_size(3, 3, 1, 2) == 3 * 2**3 * 3 + 1 == 73
    assert env.initial_state_distrib.sum() == pytest.approx(1.0)
    obs, _ = env.reset(seed=0)
    _segment, levels, misses = env._states[obs]
    assert levels == (0, 0, 0) and misses == 0


def test_value_iteration_beats_greedy_by_a_margin() -> None:
    """On the default tabular view the optimal policy (value iteration, gamma 0.99) gets at least
    15% more clicks per session than the greedy next-click policy, both evaluated exactly."""
    env = RecommenderEnv(RecommenderConfig())
    model = model_of(env)
    assert model is not None
    start = env.initial_state_distrib
    optimal = value_iteration(model, 0.99, tol=1e-10)
    v_opt = start @ policy_evaluation(model, optimal.policy, 0.99)
    v_greedy = start @ policy_evaluation(model, env.greedy_items(), 0.99)
    assert v_opt > 1.15 * v_greedy
    base = env.baselines()  # exact, undiscounted, over max_steps
    assert base["random"] < base["greedy"] < base["optimal"]
    assert base["optimal"] > 1.15 * base["greedy"]


def test_baselines_agree_with_simulation() -> None:
    env = RecommenderEnv(RecommenderConfig())
    exact = env.baselines()
    # the features view's Monte Carlo estimator on the same dynamics; 1000 sessions, clicks
    # per session has a std of about 8: standard error 0.25, tolerance 1.0
    simulated = env._simulate(greedy=True)
    assert abs(simulated - exact["greedy"]) < 1.0
    assert abs(env._simulate(greedy=False) - exact["random"]) < 0.5


def test_features_view() -> None:
    cfg = RecommenderConfig(view="features", n_categories=6, n_items=12)
    env = RecommenderEnv(cfg)
    obs, _ = env.reset(seed=0)
    # the features view's own population: 4 segments, users who leave sooner and drift harder
    assert env.users == Users(n_segments=4, interest_max=1.0, drift=0.8, leave_base=0.3,
                              leave_rate=0.3)  # fmt: skip
    assert obs.shape == (4 + 6 + 1,) and obs.dtype == np.float32
    assert obs[:4].sum() == 1.0 and obs[4:].sum() == 0.0
    obs, _, _, _, _ = env.step(0)  # item 0 is in category 0: its fatigue is now max
    assert obs[4] == 1.0
    base = env.baselines()
    assert set(base) == {"random", "greedy", "optimal"}
    # exact here (few reachable states); with 12 items greedy happens to be optimal
    assert base["random"] < base["greedy"] <= base["optimal"]
    assert RecommenderEnv(RecommenderConfig(view="features")).n_items == 120


def test_seeded_and_checked_by_gymnasium() -> None:
    from gymnasium.utils.env_checker import check_env

    for view in ("tabular", "features"):
        cfg = RecommenderConfig(view=view, n_categories=4 if view == "features" else None)
        check_env(RecommenderEnv(cfg), skip_render_check=True)
        runs = []
        for _ in range(2):
            env = RecommenderEnv(cfg)
            env.reset(seed=7)
            runs.append([float(env.step(t % env.n_items)[1]) for t in range(30)])
        assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"fatigue": -0.1}, r"env\.fatigue=-0\.1 is a probability"),
        ({"leave_base": 1.5}, r"env\.leave_base=1\.5 is a probability"),
        ({"n_items": 0}, r"catalogue is empty"),
        ({"n_categories": 12}, r"36,865 states, more than a table holds"),
        ({"view": "graph"}, r"env\.view=graph is not known"),
        ({"slate_size": 4}, r"env\.slate_size=4 must be between 1 and the catalogue.s env\.n_items=3"),  # noqa: E501
        ({"slate_size": 0}, r"env\.slate_size=0 must be between 1"),
        ({"view": "features", "slate_size": 3}, r"280,840 possible slates"),
        ({"view": "bandit", "slate_size": 2}, r"env\.view=bandit recommends one item"),
    ],
)
def test_bad_settings_are_one_line(changes: dict[str, object], pattern: str) -> None:
    with pytest.raises(UserError, match=pattern) as info:
        RecommenderEnv(replace(RecommenderConfig(), **changes))  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_presets_are_keyed_by_view() -> None:
    assert env_key({"name": "recommender", "view": "features"}) == "recommender/features"
    assert env_key({"name": "recommender", "view": "tabular"}) == "recommender/tabular"
    assert env_key({"name": "gridworld"}) == "gridworld"


def test_reachable_baselines_equal_the_tabular_baselines() -> None:
    """The features view's baselines (backward induction over the reachable user states) run
    on the tabular view's settings give the tabular view's exact values from P, all three."""
    env = RecommenderEnv(RecommenderConfig())
    reachable = env._reachable_baselines()
    assert reachable is not None
    for name, value in env.baselines().items():
        assert reachable[name] == pytest.approx(value, rel=1e-9), name
    # and the simulated estimates (1000 sessions) agree with them within their noise
    features = RecommenderEnv(RecommenderConfig(view="features"))
    exact = features.baselines()
    assert abs(features._simulate(greedy=True) - exact["greedy"]) < 2.0


def test_greedy_loses_a_fifth_of_the_session_on_the_features_view() -> None:
    """Defaults of the features view (24 categories, 120 items), exact: optimum 73.7 clicks
    per session, greedy about 59 (docs/recommender.md)."""
    base = RecommenderEnv(RecommenderConfig(view="features")).baselines()
    assert base["optimal"] == pytest.approx(73.74, abs=0.01)
    assert base["greedy"] < 0.83 * base["optimal"]
    assert base["random"] < 0.05 * base["optimal"]


def test_null_population_keys_take_the_view_defaults_and_overrides_win() -> None:
    assert RecommenderEnv(RecommenderConfig()).users.drift == 0.3
    assert RecommenderEnv(RecommenderConfig(view="features", drift=0.1)).users.drift == 0.1
    with pytest.raises(UserError, match=r"env\.drift=1\.5 is a probability"):
        RecommenderEnv(RecommenderConfig(view="features", drift=1.5))


def test_exact_return_of_a_policy_matches_its_simulated_sessions() -> None:
    """exact_return scores a deterministic policy by policy evaluation on the reachable states:
    the greedy policy gets the greedy baseline, and a policy of the agent's kind (observations
    in, actions out) gets the mean of its simulated sessions within their sampling error."""
    env = RecommenderEnv(RecommenderConfig(view="features"))
    model = env.reachable()
    assert model is not None and len(model.states) == 292  # of 4 segments x 25 x 3 misses
    greedy = model.reward.argmax(axis=1)
    order = {state: i for i, state in enumerate(model.states)}

    cat = env.catalogue  # per segment, the best item for a fresh user, fatigue ignored
    favourite = np.argmax(cat.interest[:, cat.category] * cat.quality, axis=1)

    def stubborn(obs: np.ndarray) -> np.ndarray:
        return np.asarray(favourite[obs[:, : env.users.n_segments].argmax(axis=1)])

    assert env.exact_return(
        lambda obs: np.asarray([greedy[order[_state(env, o)]] for o in obs])
    ) == pytest.approx(env.baselines()["greedy"], rel=1e-9)
    exact = env.exact_return(stubborn)
    assert exact is not None
    env.reset(seed=3)
    clicks = []
    for _ in range(2000):
        obs, _ = env.reset()
        clicks.append(0.0)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(stubborn(obs[None])[0]))
            clicks[-1] += float(reward)
            done = terminated or truncated
    # stubbornness costs clicks (fatigue); the simulated mean lies within 4 standard errors
    assert 2.33 < exact < 0.9 * env.baselines()["greedy"]
    assert abs(np.mean(clicks) - exact) < 4 * np.std(clicks) / len(clicks) ** 0.5
    assert RecommenderEnv(RecommenderConfig(view="bandit")).exact_return(stubborn) is None


def _state(env: RecommenderEnv, obs: np.ndarray) -> tuple[int, tuple[int, ...], int]:
    """The user state behind a features observation (the inverse of env.observe)."""
    n, c = env.users.n_segments, env.n_categories
    levels = tuple(round(float(x) * env.cfg.max_fatigue) for x in obs[n : n + c])
    return int(obs[:n].argmax()), levels, round(float(obs[-1]) * env.cfg.max_misses)
