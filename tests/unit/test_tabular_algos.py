"""Tabular learners and planners: schedules, TD targets and updates against hand-computed
numbers, terminated vs truncated bootstrapping, config checks, planners against the DP oracle,
checkpoints, diagnostics images and the terminal view."""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest
import torch

from rltrain.algos.base import Context
from rltrain.algos.planning import (
    PolicyIteration,
    ValueIteration,
)
from rltrain.algos.tabular import (
    ExpectedSarsa,
    QLearning,
    Sarsa,
    TabularTD,
    epsilon_at,
    epsilon_greedy,
    epsilon_greedy_probs,
    expected_sarsa_target,
    lr_at,
    q_learning_target,
    record_table,
    sarsa_target,
    step_sizes,
    td_update,
)
from rltrain.blocks.dp import model_of, value_iteration
from rltrain.config.algos import (
    ExpectedSarsaConfig,
    PolicyIterationConfig,
    QLearningConfig,
    SarsaConfig,
    ValueIterationConfig,
)
from rltrain.config.envs import GridWorldConfig, GymEnvConfig, TrafficLightConfig
from rltrain.config.schema import Config
from rltrain.envs.factory import make_single_env, make_vec_env
from rltrain.envs.render_grid import BAR_WIDTH, CELL
from rltrain.envs.vec import Transition
from rltrain.errors import UserError
from rltrain.logging import Recorder

# --- schedules --------------------------------------------------------------------------------


def test_linear_epsilon_reaches_the_end_value_at_the_fraction_and_stays() -> None:
    # start 1, end 0.1, over the first half: at progress 0.25, halfway: 1 - 0.5 * 0.9 = 0.55
    assert epsilon_at(0.0, 1.0, 0.1, 0.5, "linear") == pytest.approx(1.0)
    assert epsilon_at(0.25, 1.0, 0.1, 0.5, "linear") == pytest.approx(0.55)
    assert epsilon_at(0.5, 1.0, 0.1, 0.5, "linear") == pytest.approx(0.1)
    assert epsilon_at(0.9, 1.0, 0.1, 0.5, "linear") == pytest.approx(0.1)


def test_exponential_epsilon_is_geometric() -> None:
    # 1 -> 0.01 over half the budget: at a quarter, 1 * 0.01^0.5 = 0.1
    assert epsilon_at(0.25, 1.0, 0.01, 0.5, "exponential") == pytest.approx(0.1)
    assert epsilon_at(0.75, 1.0, 0.01, 0.5, "exponential") == pytest.approx(0.01)


def test_step_sizes() -> None:
    visits = np.array([1, 4, 16])
    np.testing.assert_allclose(step_sizes(0.5, visits, "constant", 0.8), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(step_sizes(0.5, visits, "visits", 1.0), [0.5, 0.125, 0.03125])
    np.testing.assert_allclose(step_sizes(1.0, visits, "visits", 0.5), [1.0, 0.5, 0.25])


def test_linear_alpha_decays_to_the_end_value_over_the_budget() -> None:
    # 1 -> 0.1: a quarter of the way is 1 - 0.25 * 0.9 = 0.775
    assert lr_at(0.0, 1.0, 0.1, "linear") == pytest.approx(1.0)
    assert lr_at(0.25, 1.0, 0.1, "linear") == pytest.approx(0.775)
    assert lr_at(1.0, 1.0, 0.1, "linear") == pytest.approx(0.1)
    assert lr_at(1.5, 1.0, 0.1, "linear") == pytest.approx(0.1)  # past the budget: stays
    # the other schedules keep their base lr (visits divides it per pair)
    assert lr_at(0.5, 0.3, 0.1, "constant") == lr_at(0.5, 0.3, 0.1, "visits") == 0.3
    np.testing.assert_allclose(step_sizes(0.775, np.array([1, 9]), "linear", 0.8), [0.775] * 2)


# --- policies and targets ---------------------------------------------------------------------


def test_epsilon_greedy_probabilities_split_the_greedy_mass_over_ties() -> None:
    q = np.array([[1.0, 3.0, 3.0, 0.0], [0.0, 0.0, 0.0, 5.0]])
    # eps / A = 0.05 each; the greedy 0.8 split over the two tied actions.
    np.testing.assert_allclose(
        epsilon_greedy_probs(q, 0.2), [[0.05, 0.45, 0.45, 0.05], [0.05, 0.05, 0.05, 0.85]]
    )


def test_epsilon_greedy_samples_follow_those_probabilities() -> None:
    q = np.tile([1.0, 3.0, 3.0, 0.0], (40_000, 1))
    actions = epsilon_greedy(q, 0.2, np.random.default_rng(0))
    freq = np.bincount(actions, minlength=4) / len(actions)
    # binomial std of a frequency near 0.45 over 40k draws is 0.0025; allow 4 std
    np.testing.assert_allclose(freq, [0.05, 0.45, 0.45, 0.05], atol=0.01)


REWARD = np.array([1.0, 0.5])
DISCOUNT = np.array([0.9, 0.0])  # the second transition terminated: no bootstrap
Q_NEXT = np.array([[1.0, 2.0], [3.0, 4.0]])


def test_q_learning_target() -> None:
    np.testing.assert_allclose(q_learning_target(REWARD, DISCOUNT, Q_NEXT), [1 + 0.9 * 2, 0.5])


def test_sarsa_target_uses_the_next_action() -> None:
    target = sarsa_target(REWARD, DISCOUNT, Q_NEXT, np.array([0, 1]))
    np.testing.assert_allclose(target, [1 + 0.9 * 1, 0.5])


def test_expected_sarsa_target_averages_over_the_epsilon_greedy_policy() -> None:
    # eps 0.2 over 2 actions: pi = [0.1, 0.9] in row 0; E[Q] = 0.1 * 1 + 0.9 * 2 = 1.9
    target = expected_sarsa_target(REWARD, DISCOUNT, Q_NEXT, 0.2)
    np.testing.assert_allclose(target, [1 + 0.9 * 1.9, 0.5])
    # with eps = 0 it is Q-learning's target, with eps = 1 the uniform average
    np.testing.assert_allclose(
        expected_sarsa_target(REWARD, DISCOUNT, Q_NEXT, 0.0),
        q_learning_target(REWARD, DISCOUNT, Q_NEXT),
    )
    np.testing.assert_allclose(expected_sarsa_target(REWARD, DISCOUNT, Q_NEXT, 1.0)[0], 1 + 1.35)


def test_td_update_single_transition() -> None:
    q, visits = np.zeros((2, 2)), np.zeros((2, 2), dtype=np.int64)
    td_update(q, visits, np.array([0]), np.array([1]), np.array([1.0]), 0.5, "constant", 0.8)
    assert q[0, 1] == pytest.approx(0.5) and visits[0, 1] == 1
    td_update(q, visits, np.array([0]), np.array([1]), np.array([1.0]), 0.5, "constant", 0.8)
    assert q[0, 1] == pytest.approx(0.75) and visits[0, 1] == 2
    assert q.sum() == pytest.approx(0.75)  # nothing else moved


def test_td_update_with_visit_counts_averages_the_targets() -> None:
    # lr / N with lr 1: the first target is copied, then the running mean of targets.
    q, visits = np.zeros((1, 1)), np.zeros((1, 1), dtype=np.int64)
    for target in (4.0, 2.0, 3.0):
        td_update(q, visits, np.array([0]), np.array([0]), np.array([target]), 1.0, "visits", 1.0)
    assert q[0, 0] == pytest.approx(3.0) and visits[0, 0] == 3


def test_td_update_merges_duplicate_pairs_of_a_batch() -> None:
    q, visits = np.zeros((2, 2)), np.zeros((2, 2), dtype=np.int64)
    q[0, 1] = 0.5
    states, actions = np.array([1, 1, 0]), np.array([0, 0, 1])
    td_update(q, visits, states, actions, np.array([1.0, 3.0, 2.0]), 0.5, "constant", 0.8)
    # (1, 0) twice: mean target 2, beta = 1 - (1 - 0.5)^2 = 0.75 -> 0 + 0.75 * 2 = 1.5
    assert q[1, 0] == pytest.approx(1.5)
    # (0, 1) once: 0.5 + 0.5 * (2 - 0.5) = 1.25
    assert q[0, 1] == pytest.approx(1.25)
    np.testing.assert_array_equal(visits, [[0, 1], [2, 0]])


# --- config and env checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"lr": 0.0}, "algo.lr"),
        ({"lr": 1.5}, "algo.lr"),
        ({"gamma": 1.01}, "algo.gamma"),
        ({"epsilon_start": 1.2}, "algo.epsilon_start"),
        ({"epsilon_end": -0.1}, "algo.epsilon_end"),
        ({"epsilon_fraction": 0.0}, "algo.epsilon_fraction"),
        ({"epsilon_schedule": "cosine"}, "algo.epsilon_schedule"),
        ({"epsilon_schedule": "exponential", "epsilon_end": 0.0}, "algo.epsilon_schedule"),
        ({"lr_schedule": "harmonic"}, "algo.lr_schedule"),
        ({"lr_schedule": "visits", "lr_omega": 0.5}, "algo.lr_omega"),
        ({"lr_schedule": "linear", "lr": 0.5, "lr_end": 0.6}, "algo.lr_end"),
        ({"lr_schedule": "linear", "lr_end": -0.1}, "algo.lr_end"),
    ],
)
def test_td_config_checks(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        SarsaConfig(**kwargs)


@pytest.mark.parametrize("cls", [ValueIterationConfig, PolicyIterationConfig])
def test_planner_config_checks(cls: type) -> None:
    with pytest.raises(UserError, match=r"algo\.tol"):
        cls(tol=0.0)
    with pytest.raises(UserError, match=r"algo\.gamma"):
        cls(gamma=1.5)


def test_config_names() -> None:
    assert (QLearningConfig().name, SarsaConfig().name, ExpectedSarsaConfig().name) == (
        "q_learning", "sarsa", "expected_sarsa",
    )


def test_learners_refuse_continuous_and_image_observations() -> None:
    box = gym.spaces.Box(-1.0, 1.0, (4,))
    with pytest.raises(UserError, match=r"algo=q_learning needs discrete observations.*dqn.*ppo"):
        QLearning.check_env(box, gym.spaces.Discrete(2))
    frames = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)
    with pytest.raises(UserError, match=r"algo=expected_sarsa .*image observations"):
        ExpectedSarsa.check_env(frames, gym.spaces.Discrete(4))
    with pytest.raises(UserError, match=r"algo=sarsa needs discrete actions"):
        Sarsa.check_env(gym.spaces.Discrete(4), box)
    Sarsa.check_env(gym.spaces.Discrete(4), gym.spaces.Discrete(2))  # fine


def test_planners_refuse_envs_without_a_model() -> None:
    with pytest.raises(UserError, match=r"algo=value_iteration needs an environment model"):
        ValueIteration.check_env(gym.spaces.Box(-1.0, 1.0, (2,)), gym.spaces.Discrete(3))
    cfg = Config(algo=ValueIterationConfig(), env=GymEnvConfig(id="MountainCar-v0"))
    env = make_vec_env(cfg.env, 1, 0, True)
    try:
        with pytest.raises(UserError, match=r"needs an environment model.*q_learning"):
            ValueIteration(cfg.algo, _context(cfg, env))
    finally:
        env.close()


# --- the learner on a scripted env ------------------------------------------------------------


def _context(cfg: Config, env: Any, seed: int = 0) -> Context:
    return Context(
        cfg=cfg, env=env, device=torch.device("cpu"), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(seed), run_dir=None,
    )


LEARNERS: dict[str, type[TabularTD]] = {
    "q_learning": QLearning, "sarsa": Sarsa, "expected_sarsa": ExpectedSarsa,
}


class ScriptedVecEnv:
    """One env with the 4x4 gridworld's spaces whose next step returns a given Transition."""

    num_envs = 1
    single_observation_space = gym.spaces.Discrete(16)
    single_action_space = gym.spaces.Discrete(4)

    def __init__(self) -> None:
        self.next: Transition | None = None
        self.actions: list[int] = []

    def reset(self, seed: int | None = None) -> np.ndarray:
        return np.array([0])

    def step(self, actions: np.ndarray) -> Transition:
        self.actions.append(int(actions[0]))
        assert self.next is not None
        return self.next

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(0), np.zeros(0, dtype=np.int64)

    def state_dict(self) -> None:
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _scripted(algo_cfg: Any) -> tuple[TabularTD, ScriptedVecEnv]:
    env = ScriptedVecEnv()
    cfg = Config(algo=algo_cfg, env=GridWorldConfig(), total_steps=100)
    algo = LEARNERS[algo_cfg.name](algo_cfg, _context(cfg, env))
    algo.q[3] = [0.0, 2.0, 1.0, 0.0]
    algo.actions = np.array([1])
    return algo, env


def _ended(terminated: bool) -> Transition:
    # From state 0 by action 1 into state 3 with reward 1, and the episode ended there:
    # `obs` is the reset state 0 (Q = 0), `final_obs` the true successor 3.
    return Transition(
        obs=np.array([0]), reward=np.array([1.0], dtype=np.float32),
        terminated=np.array([terminated]), truncated=np.array([not terminated]),
        final_obs=np.array([3]),
    )


@pytest.mark.parametrize("cfg_cls", [QLearningConfig, SarsaConfig, ExpectedSarsaConfig])
def test_truncation_bootstraps_from_the_final_state_and_termination_does_not(
    cfg_cls: type,
) -> None:
    # lr 1, gamma 0.5, greedy (eps 0): every target is r + 0.5 * max Q(3) = 1 + 0.5 * 2 = 2
    kwargs = {"lr": 1.0, "gamma": 0.5, "epsilon_start": 0.0, "epsilon_end": 0.0}
    algo, env = _scripted(cfg_cls(**kwargs))
    env.next = _ended(terminated=False)
    assert algo.iterate() == 1
    assert env.actions == [1]
    assert algo.q[0, 1] == pytest.approx(2.0)
    algo.actions = np.array([1])
    env.next = _ended(terminated=True)
    algo.iterate()
    assert algo.q[0, 1] == pytest.approx(1.0)  # r only
    assert algo.visits[0, 1] == 2 and algo.updates == 2


def test_terminal_states_start_at_zero_even_with_optimistic_values() -> None:
    algo, _ = _scripted(QLearningConfig(initial_q=5.0))
    # 4x4 default: H at 14 and G at 15 are terminal
    assert np.all(algo.q[[14, 15]] == 0.0)
    assert np.all(algo.q[:3] == 5.0)


# --- the learner on real envs -----------------------------------------------------------------


def _learner(env_cfg: Any, algo_cfg: Any = None, steps: int = 0) -> TabularTD:
    algo_cfg = algo_cfg or QLearningConfig()
    cfg = Config(algo=algo_cfg, env=env_cfg, total_steps=1000)
    env = make_vec_env(env_cfg, env_cfg.num_envs, 0, True)
    ctx = _context(cfg, env)
    algo = LEARNERS[algo_cfg.name](algo_cfg, ctx)
    while ctx.step < steps:
        ctx.step += algo.iterate()
    return algo


def test_vectorized_learner_steps_every_env() -> None:
    algo = _learner(GridWorldConfig(num_envs=4), steps=200)
    assert algo.ctx.step == 200 and algo.visits.sum() == 200 and algo.updates == 200
    assert algo.act(np.array([0, 5, 9]), deterministic=True).shape == (3,)


@pytest.mark.parametrize("flag", [False, True])
def test_random_first_action_is_uniform_in_the_first_state_of_every_episode(flag: bool) -> None:
    # Greedy behaviour (epsilon 0) with Q(0, right) far ahead, and every step ends the episode
    # back in state 0: without the flag the next action is always "right", with it uniform.
    cfg = SarsaConfig(
        lr=0.01, epsilon_start=0.0, epsilon_end=0.0, random_first_action=flag
    )
    algo, env = _scripted(cfg)
    algo.q[0] = [0.0, 5.0, 0.0, 0.0]
    env.next = _ended(terminated=True)
    chosen = []
    for _ in range(400):
        algo.iterate()
        chosen.append(int(algo.actions[0]))
    counts = np.bincount(chosen, minlength=4)
    if flag:
        assert counts.min() > 60, counts  # 100 expected per action
    else:
        np.testing.assert_array_equal(counts, [0, 400, 0, 0])


def test_checkpoint_round_trip() -> None:
    algo = _learner(GridWorldConfig(), SarsaConfig(lr=0.5), steps=300)
    state = algo.state_dict()
    assert state["q"].dtype == torch.float64
    fresh = _learner(GridWorldConfig(), SarsaConfig(lr=0.5))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.q, algo.q)
    np.testing.assert_array_equal(fresh.visits, algo.visits)
    assert fresh.updates == 300
    with pytest.raises(UserError, match="Q table"):
        _learner(GridWorldConfig(layout="maze8")).load_state_dict(state)


def test_greedy_actions_break_ties_towards_the_lowest_index() -> None:
    algo = _learner(GridWorldConfig())
    algo.q[0] = [0.0, 1.0, 1.0, 0.5]
    assert algo.act(np.array([0]), deterministic=True)[0] == 1


class CaptureRecorder:
    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}
        self.images: dict[str, np.ndarray] = {}
        self.histograms: dict[str, np.ndarray] = {}

    def scalar(self, tag: str, value: float) -> None:
        self.scalars[tag] = float(value)

    def histogram(self, tag: str, values: np.ndarray) -> None:
        self.histograms[tag] = values

    def image(self, tag: str, image: np.ndarray) -> None:
        self.images[tag] = image


def test_diagnostics_from_the_table_and_the_oracle() -> None:
    algo = _learner(GridWorldConfig())
    oracle = algo.info.oracle
    assert oracle is not None
    algo.q[:] = oracle.q_star
    rec = CaptureRecorder()
    record_table(cast(Recorder, rec), algo.q, algo.info, images=True)
    mask = oracle.decision_mask
    assert rec.scalars["values/q_error_vs_optimal"] == 0.0
    assert rec.scalars["values/policy_agreement"] == 1.0
    assert rec.scalars["values/v_mean"] == pytest.approx(oracle.v_star[mask].mean())
    assert rec.scalars["values/q_max"] == pytest.approx(1.0)  # stepping into G
    advantage = oracle.q_star[mask] - oracle.v_star[mask, None]
    assert rec.scalars["values/advantage_mean"] == pytest.approx(advantage.mean())
    assert rec.histograms["values/q"].size == mask.sum() * 4
    for tag, bar in (("values/v_heatmap", BAR_WIDTH), ("policy/greedy_arrows", 0),
                     ("values/v_error_vs_optimal", BAR_WIDTH)):  # fmt: skip
        assert rec.images[tag].shape == (4 * CELL, 4 * CELL + bar, 3)
        assert rec.images[tag].dtype == np.uint8
    algo.q[0, 1] += 0.25
    record_table(cast(Recorder, rec), algo.q, algo.info, images=False)
    assert rec.scalars["values/q_error_vs_optimal"] == pytest.approx(0.25)


def test_cliff_walking_images_cover_its_4x12_grid() -> None:
    algo = _learner(GymEnvConfig(name="cliff_walking", id="CliffWalking-v1"))
    rec = CaptureRecorder()
    record_table(cast(Recorder, rec), algo.q, algo.info, images=True)
    assert rec.images["policy/greedy_arrows"].shape == (4 * CELL, 12 * CELL, 3)


# --- terminal view ----------------------------------------------------------------------------


def test_terminal_view_of_a_gridworld_shows_values_and_arrows() -> None:
    algo = _learner(GridWorldConfig(), QLearningConfig(gamma=0.9))
    assert algo.info.oracle is not None
    algo.q[:] = algo.info.oracle.q_star
    view = algo.terminal_view()
    values, policy = view.split("\n\n")
    # second grid row: 5, 4, 3 and 2 moves from G -> V* = 0.9^4 ... 0.9^1
    assert values.splitlines()[2].split() == ["0.66", "0.73", "0.81", "0.90"]
    # Optimal with ties to the lowest index: right along the top rows, down the last column.
    assert policy.splitlines()[1:] == ["→ → → ↓", "→ → → ↓", "→ → → ↓", "↑ ↑ H G"]


def test_terminal_view_of_frozen_lake_maps_its_action_order() -> None:
    algo = _learner(GymEnvConfig(name="frozen_lake", id="FrozenLake-v1"))
    algo.q[:, 2] = 1.0  # FrozenLake's action 2 is "right"
    policy = algo.terminal_view().split("greedy policy:\n")[1].splitlines()
    assert policy == ["→ → → →", "→ H → H", "→ → → H", "H → → G"]


def test_terminal_view_of_the_traffic_light_is_a_named_q_table() -> None:
    algo = _learner(TrafficLightConfig())
    algo.q[:] = [[0.0, -5.0], [0.0, 1.0]]
    lines = algo.terminal_view().splitlines()
    assert lines[0].split() == ["Q", "stop", "forward", "greedy"]
    assert lines[1].split() == ["red", "0.000", "-5.000", "stop"]
    assert lines[2].split() == ["green", "0.000", "1.000", "forward"]


def test_terminal_view_of_taxi_is_a_summary() -> None:
    view = _learner(GymEnvConfig(name="taxi", id="Taxi-v4")).terminal_view()
    assert "500 states x 6 actions" in view and "\n" not in view


# --- planners ---------------------------------------------------------------------------------


def _planner(cls: Any, algo_cfg: Any, env_cfg: Any) -> Any:
    cfg = Config(algo=algo_cfg, env=env_cfg, total_steps=10_000)
    env = make_vec_env(env_cfg, 1, 0, True)
    ctx = _context(cfg, env)
    planner = cls(algo_cfg, ctx)
    while not planner.finished and ctx.step < cfg.total_steps:
        ctx.step += planner.iterate()
    env.close()
    return planner


@pytest.mark.parametrize(
    "env_cfg",
    [GridWorldConfig(slip=0.2), GymEnvConfig(name="cliff_walking", id="CliffWalking-v1")],
    ids=["slippery_gridworld", "cliff_walking"],
)
def test_value_iteration_matches_the_oracle(env_cfg: Any) -> None:
    planner = _planner(ValueIteration, ValueIterationConfig(gamma=0.9, tol=1e-10), env_cfg)
    model = model_of(make_single_env(env_cfg))
    assert model is not None
    exact = value_iteration(model, 0.9, tol=1e-10)
    assert planner.finished and planner.ctx.step == planner.sweeps == exact.sweeps
    np.testing.assert_allclose(planner.q, exact.q, atol=1e-8)
    assert planner.ctx.recorder.latest["values/bellman_residual"] < 1e-10


def test_value_iteration_residual_on_the_4x4_closed_form() -> None:
    # Deterministic 4x4 with gamma 0.9: V_k is exact up to distance k, so the residual is
    # 0.9^(k-1) at sweep k (one more cell row reached), until it is exactly 0 at sweep 7.
    planner = _planner(ValueIteration, ValueIterationConfig(gamma=0.9), GridWorldConfig())
    assert planner.sweeps == 7 and planner.residual == 0.0
    np.testing.assert_allclose(
        planner.v.reshape(4, 4)[0], [0.9**5, 0.9**4, 0.9**3, 0.9**2], atol=1e-12
    )


def test_policy_iteration_agrees_with_value_iteration() -> None:
    env_cfg = GridWorldConfig(slip=0.2)
    pi = _planner(PolicyIteration, PolicyIterationConfig(gamma=0.95), env_cfg)
    vi = _planner(ValueIteration, ValueIterationConfig(gamma=0.95, tol=1e-12), env_cfg)
    assert pi.finished and pi.sweeps < 10
    np.testing.assert_allclose(pi.v, vi.v, atol=1e-9)
    np.testing.assert_array_equal(pi.act(np.arange(16), True), vi.act(np.arange(16), True))
    assert pi.residual < 1e-9


def test_policy_iteration_with_gamma_1_on_a_never_ending_env_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"algo\.gamma=1: no policy ever reaches a terminal"):
        _planner(PolicyIteration, PolicyIterationConfig(gamma=1.0), TrafficLightConfig())


def test_planner_checkpoint_round_trip() -> None:
    env_cfg = GridWorldConfig()
    done = _planner(PolicyIteration, PolicyIterationConfig(gamma=0.9), env_cfg)
    cfg = Config(algo=PolicyIterationConfig(gamma=0.9), env=env_cfg)
    env = make_vec_env(env_cfg, 1, 0, True)
    fresh = PolicyIteration(cfg.algo, _context(cfg, env))
    env.close()
    fresh.load_state_dict(done.state_dict())
    assert fresh.finished and fresh.sweeps == done.sweeps
    np.testing.assert_array_equal(fresh.policy, done.policy)
    np.testing.assert_array_equal(fresh.q, done.q)
