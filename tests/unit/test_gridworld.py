from __future__ import annotations

import importlib
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rltrain.envs.gridworld as gw
from rltrain.config.envs import GridWorldConfig
from rltrain.envs.factory import make_vec_env
from rltrain.envs.gridworld import (
    DOWN,
    LAYOUTS,
    LEFT,
    RIGHT,
    UP,
    GridWorldEnv,
    make_gridworld,
)
from rltrain.errors import UserError


def test_default_layout_attributes_and_spaces() -> None:
    env = GridWorldEnv()
    assert (env.rows, env.cols) == (4, 4)
    assert env.grid == ["S...", "....", "....", "..HG"]
    assert env.observation_space.n == 16 and env.action_space.n == 4
    assert env.start_state == 0
    assert np.flatnonzero(env.terminal_states).tolist() == [14, 15]
    assert not env.wall_mask.any()
    obs, _ = env.reset(seed=0)
    assert obs == 0


def test_named_layouts_shapes() -> None:
    cliff = GridWorldEnv(layout="cliff")
    assert (cliff.rows, cliff.cols) == (4, 12)
    assert cliff.grid[3] == "S" + "H" * 10 + "G"
    assert cliff.start_state == 36 and cliff.terminal_states[37:48].all()
    maze = GridWorldEnv(layout="maze8")
    assert (maze.rows, maze.cols) == (8, 8)
    assert maze.wall_mask.sum() >= 15
    assert set(LAYOUTS) == {"4x4", "cliff", "maze8"}


def test_map_string_with_slashes_or_newlines() -> None:
    a = GridWorldEnv(layout="S..#/..H./...G")
    b = GridWorldEnv(layout="\n  S..#\n  ..H.\n  ...G\n")
    assert a.grid == b.grid == ["S..#", "..H.", "...G"]
    assert a.wall_mask[3] and a.terminal_states[6] and a.terminal_states[11]


def test_P_is_a_valid_exact_model() -> None:
    env = GridWorldEnv(layout="maze8", slip=0.2)
    n = env.observation_space.n
    for s in range(n):
        for a in range(4):
            outcomes = env.P[s][a]
            assert abs(sum(p for p, *_ in outcomes) - 1.0) < 1e-12
            next_states = [ns for _, ns, _, _ in outcomes]
            assert len(next_states) == len(set(next_states)), "duplicates must be merged"
            if env.terminal_states[s]:
                assert outcomes == [(1.0, s, 0.0, True)]
            elif env.wall_mask[s]:  # unreachable; a harmless self-loop
                assert outcomes == [(1.0, s, 0.0, False)]
            else:
                assert not any(env.wall_mask[ns] for _, ns, _, _ in outcomes)


def test_slip_distribution_in_P() -> None:
    env = GridWorldEnv(slip=0.2)
    # From (1,1) = state 5, "right": intended (1,2)=6 w.p. 0.8, up (0,1)=1 and down (2,1)=9.
    assert sorted((ns, round(p, 12)) for p, ns, _, _ in env.P[5][RIGHT]) == [
        (1, 0.1),
        (6, 0.8),
        (9, 0.1),
    ]
    # From the top-left corner, "up": off-grid (stay) 0.8 + left (stay) 0.1 merge; right 0.1.
    assert sorted((ns, round(p, 12)) for p, ns, _, _ in env.P[0][UP]) == [(0, 0.9), (1, 0.1)]


@pytest.mark.parametrize(("state", "action"), [(5, RIGHT), (0, UP), (10, DOWN), (11, DOWN)])
def test_step_samples_follow_P(state: int, action: int) -> None:
    # 20k samples: the standard error of a frequency is at most sqrt(0.25/20000) = 0.0035,
    # so |empirical - P| < 0.015 is a > 4-sigma band; the seed makes the test deterministic.
    env = GridWorldEnv(slip=0.2)
    env.reset(seed=123)
    n = 20_000
    counts = np.zeros(env.observation_space.n)
    rewards: dict[int, set[tuple[float, bool]]] = {}
    for _ in range(n):
        env.s = state
        ns, r, term, _, _ = env.step(action)
        counts[ns] += 1
        rewards.setdefault(ns, set()).add((float(r), term))
    expected = np.zeros_like(counts)
    expected_reward = {}
    for p, ns, r, term in env.P[state][action]:
        expected[ns] += p
        expected_reward[ns] = (r, term)
    assert np.max(np.abs(counts / n - expected)) < 0.015
    assert set(np.flatnonzero(counts)) == set(np.flatnonzero(expected))
    for ns, rs in rewards.items():
        assert rs == {expected_reward[ns]}


def test_reset_seed_reproduces_trajectory() -> None:
    def rollout(seed: int) -> list[int]:
        env = GridWorldEnv(layout="maze8", slip=0.3)
        obs, _ = env.reset(seed=seed)
        traj = [obs]
        for t in range(60):
            obs, *_ = env.step(t % 4)
            traj.append(obs)
        return traj

    assert rollout(7) == rollout(7)
    assert rollout(7) != rollout(8)


def test_walls_and_edges_block() -> None:
    env = GridWorldEnv(layout="S#G/...", step_reward=-0.5)
    env.reset(seed=0)
    obs, r, term, trunc, _ = env.step(RIGHT)  # into the wall
    assert (obs, r, term, trunc) == (0, -0.5, False, False)
    obs, r, term, _, _ = env.step(UP)  # off the grid
    assert (obs, r, term) == (0, -0.5, False)
    obs, r, term, _, _ = env.step(LEFT)
    assert (obs, r, term) == (0, -0.5, False)
    obs, r, term, _, _ = env.step(DOWN)
    assert (obs, r, term) == (3, -0.5, False)


def test_termination_on_goal_and_trap() -> None:
    env = GridWorldEnv(layout="SH/.G", goal_reward=2.0, trap_reward=-3.0)
    env.reset(seed=0)
    obs, r, term, trunc, _ = env.step(RIGHT)
    assert (obs, r, term, trunc) == (1, -3.0, True, False)
    env.reset()
    env.step(DOWN)
    obs, r, term, trunc, _ = env.step(RIGHT)
    assert (obs, r, term, trunc) == (3, 2.0, True, False)


def test_truncation_at_max_steps() -> None:
    env = GridWorldEnv(max_steps=3)
    env.reset(seed=0)
    flags = [env.step(UP)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    env.reset()
    assert env.step(UP)[2:4] == (False, False), "reset restarts the step counter"


def test_termination_on_the_last_step_is_not_a_truncation() -> None:
    env = GridWorldEnv(layout="SG", max_steps=1)
    env.reset(seed=0)
    _, r, term, trunc, _ = env.step(RIGHT)
    assert (r, term, trunc) == (1.0, True, False)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"layout": "9x9"}, "unknown layout '9x9'; known layouts: 4x4, cliff, maze8"),
        ({"layout": "...G/...."}, "no start cell 'S'"),
        ({"layout": "S..G/S..."}, "2 start cells"),
        ({"layout": "S.../...."}, "no goal cell 'G'"),
        ({"layout": "S..G/..."}, "row 1"),
        ({"layout": "S.x.G"}, "unknown character 'x'"),
        ({"layout": "S.X/..G"}, "unknown character 'X' in row 0"),
        ({"layout": "S#G/.#."}, "no goal G can be reached"),
        ({"layout": "SHG"}, "no goal G can be reached"),
        ({"slip": 1.5}, "env.slip must be in [0, 1], got 1.5"),
        ({"slip": -0.1}, "env.slip must be in [0, 1]"),
        ({"max_steps": 0}, "env.max_steps must be >= 1, got 0"),
        ({"render_mode": "human"}, "render_mode 'human'"),
    ],
)
def test_user_errors_name_the_problem(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UserError) as info:
        GridWorldEnv(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_render_modes() -> None:
    env = GridWorldEnv(render_mode="ansi")
    env.reset(seed=0)
    env.step(RIGHT)
    text = env.render()
    assert isinstance(text, str)
    lines = text.strip("\n").split("\n")
    assert lines[-4:] == ["SA..", "....", "....", "..HG"]
    env = GridWorldEnv(layout="maze8", render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.uint8 and img.shape == (8 * 16, 8 * 16, 3)
    # The agent's disc is drawn in the start cell, not in an empty floor cell.
    assert not np.array_equal(img[8, 8], img[8, 8 + 16 * 3])


def test_env_checker_and_registration() -> None:
    check_env(GridWorldEnv(layout="maze8", slip=0.1), skip_render_check=True)
    env = gymnasium.make("rltrain/GridWorld-v0", layout="cliff", trap_reward=-100.0)
    assert env.unwrapped.rows == 4  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=0)
    assert obs == 36
    env.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(gw)  # registering again must neither fail nor warn


def test_make_gridworld_from_config() -> None:
    cfg = GridWorldConfig(
        layout="cliff", slip=0.1, step_reward=-1.0, trap_reward=-100.0, max_steps=7
    )
    env = make_gridworld(cfg, render_mode="ansi")
    assert (env.rows, env.cols, env.slip, env.max_steps) == (4, 12, 0.1, 7)
    assert env.step_reward == -1.0 and env.trap_reward == -100.0 and env.goal_reward == 1.0
    assert env.render_mode == "ansi"
    assert GridWorldConfig().name == "gridworld"


def test_random_start_is_uniform_over_cells_reachable_from_s_and_only_in_training() -> None:
    layout = "S.#./..##/...G"  # (0, 3) is enclosed by walls and the edge
    env = GridWorldEnv(layout=layout, random_start=True)
    reachable = [0, 1, 4, 5, 8, 9, 10]  # every floor cell except the pocket (3) and G (11)
    np.testing.assert_allclose(env.initial_state_distrib[reachable], 1 / 7)
    assert env.initial_state_distrib.sum() == pytest.approx(1.0)
    starts = [env.reset(seed=seed)[0] for seed in range(700)]
    counts = np.bincount(starts, minlength=12)
    assert set(np.flatnonzero(counts)) == set(reachable)
    assert counts[reachable].min() > 60, counts  # 100 expected each
    # Evaluation envs start at S whatever random_start says.
    cfg = GridWorldConfig(layout=layout, random_start=True, num_envs=4)
    for training, expected in ((True, None), (False, 0)):
        vec = make_vec_env(cfg, num_envs=4, seed=3, training=training)
        try:
            first = {int(s) for seed in range(10) for s in vec.reset(seed=seed)}
        finally:
            vec.close()
        if expected is None:
            assert len(first) > 1
        else:
            assert first == {expected}
