from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rltrain.config.envs import TrafficLightConfig
from rltrain.envs.traffic_light import (
    FORWARD,
    GREEN,
    RED,
    STOP,
    TrafficLightEnv,
    make_traffic_light,
)
from rltrain.errors import UserError


def test_P_rewards_and_switching() -> None:
    env = TrafficLightEnv(switch_prob=0.3, green_reward=2.0, red_penalty=-7.0)
    assert env.P[RED][STOP] == [(0.7, RED, 0.0, False), (0.3, GREEN, 0.0, False)]
    assert env.P[RED][FORWARD] == [(0.7, RED, -7.0, False), (0.3, GREEN, -7.0, False)]
    assert env.P[GREEN][STOP] == [(0.7, GREEN, 0.0, False), (0.3, RED, 0.0, False)]
    assert env.P[GREEN][FORWARD] == [(0.7, GREEN, 2.0, False), (0.3, RED, 2.0, False)]
    always = TrafficLightEnv(switch_prob=1.0)
    assert always.P[RED][STOP] == [(1.0, GREEN, 0.0, False)]


def test_step_samples_follow_P() -> None:
    # 20k samples per state; standard error sqrt(0.21/20000) = 0.0032, tolerance 0.015.
    env = TrafficLightEnv(switch_prob=0.3)
    env.reset(seed=5)
    n = 20_000
    for state in (RED, GREEN):
        switched = 0
        for _ in range(n):
            env.s = state
            ns, r, term, _, _ = env.step(FORWARD)
            switched += ns != state
            assert r == (1.0 if state == GREEN else -5.0) and not term
        assert abs(switched / n - 0.3) < 0.015


def test_start_is_uniform() -> None:
    env = TrafficLightEnv()
    env.reset(seed=0)
    starts = [env.reset()[0] for _ in range(4000)]
    # standard error 0.0079; a 0.04 band is 5 sigma.
    assert abs(np.mean(starts) - 0.5) < 0.04


def test_never_terminates_truncates_at_max_steps() -> None:
    env = TrafficLightEnv(max_steps=10)
    env.reset(seed=1)
    flags = [env.step(t % 2)[2:4] for t in range(10)]
    assert all(not term for term, _ in flags)
    assert [trunc for _, trunc in flags] == [False] * 9 + [True]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"switch_prob": 1.2}, "env.switch_prob must be in [0, 1], got 1.2"),
        ({"max_steps": 0}, "env.max_steps must be >= 1, got 0"),
        ({"render_mode": "rgb_array"}, "render_mode 'rgb_array'"),
    ],
)
def test_user_errors(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UserError) as info:
        TrafficLightEnv(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_render_checker_registration_and_config() -> None:
    env = TrafficLightEnv(render_mode="ansi")
    env.reset(seed=0)
    env.s = GREEN
    env.step(STOP)
    text = env.render()
    assert isinstance(text, str) and "stop" in text and text.startswith("light: ")
    check_env(TrafficLightEnv(), skip_render_check=True)
    made = gymnasium.make("rltrain/TrafficLight-v0", switch_prob=0.1)
    assert made.unwrapped.switch_prob == 0.1  # type: ignore[attr-defined]
    made.close()
    cfg = TrafficLightConfig(switch_prob=0.2, green_reward=3.0, red_penalty=-1.0, max_steps=4)
    built = make_traffic_light(cfg)
    assert (built.switch_prob, built.green_reward, built.red_penalty, built.max_steps) == (
        0.2,
        3.0,
        -1.0,
        4,
    )
    assert TrafficLightConfig().name == "traffic_light"
