"""Tuned presets are keyed by what they tune (the env id), sit below the command line, and each
(algo, env) pair has at most one. Configs are composed as a run composes them."""

from __future__ import annotations

import itertools

import pytest
from omegaconf import OmegaConf

from rltrain.config.algos import ALGO_SCHEMAS
from rltrain.config.presets import command_line_keys, env_key, find_preset, load_presets
from rltrain.config.store import compose_run_config
from rltrain.config.validate import typed_config
from rltrain.errors import UserError

# env options that name a gymnasium id: `env=<name>` and `env=gym env.id=<id>` must train alike
NAMED_IDS = {
    "cartpole": "CartPole-v1", "pendulum": "Pendulum-v1", "frozen_lake": "FrozenLake-v1",
    "cliff_walking": "CliffWalking-v1", "taxi": "Taxi-v4",
}  # fmt: skip


def test_every_preset_names_known_algorithms_and_no_pair_twice() -> None:
    presets = load_presets()
    assert len(presets) >= 15
    claimed: dict[tuple[str, str], str] = {}
    for preset in presets.values():
        assert preset.source and preset.settings, preset.name
        for algo, env in itertools.product(preset.algos, preset.envs):
            assert algo in ALGO_SCHEMAS, (preset.name, algo)
            assert (algo, env) not in claimed, f"{preset.name} and {claimed[(algo, env)]}"
            claimed[(algo, env)] = preset.name


def test_the_td_learners_share_presets_by_reference() -> None:
    shared = [p for p in load_presets().values() if len(p.algos) == 3]
    assert {p.name for p in shared} >= {"td_frozen_lake", "td_taxi", "td_cliff_walking"}
    assert all(set(p.algos) == {"q_learning", "sarsa", "expected_sarsa"} for p in shared)


@pytest.mark.parametrize("name", sorted(load_presets()))
def test_every_preset_applies_and_validates(name: str) -> None:
    """Composed for each pair it names, the preset applies and the schemas accept the result."""
    preset = load_presets()[name]
    options = {v: k for k, v in NAMED_IDS.items()}
    for algo, key in itertools.product(preset.algos, preset.envs):
        env = options.get(key, key)  # gridworld, traffic_light, atari are env options too
        view = []
        if "/" in key:  # env=recommender env.view=<view>, env=text env.task=<task>
            env, choice = key.split("/")
            view = [f"env.{ {'recommender': 'view', 'text': 'task'}[env] }={choice}"]
        if "-v" in env:  # a gymnasium id with no env option of its own (HalfCheetah-v5, ...)
            env, view = "gym", [f"env.id={key}"]
        node = compose_run_config([f"algo={algo}", f"env={env}", *view])
        assert node.preset == name
        for dotted, value in _flat(preset.settings):
            assert OmegaConf.select(node, dotted) == value, (name, dotted)
        if key != "atari":  # the atari env checks ale-py only when built
            typed_config(node)


def _flat(settings: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for k, v in settings.items():
        out += _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]
    return out


@pytest.mark.parametrize(("option", "env_id"), sorted(NAMED_IDS.items()))
@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "q_learning", "sarsa", "reinforce"])
def test_gym_id_gets_the_preset_of_its_named_env(option: str, env_id: str, algo: str) -> None:
    named = compose_run_config([f"algo={algo}", f"env={option}"])
    by_id = compose_run_config([f"algo={algo}", "env=gym", f"env.id={env_id}"])
    assert OmegaConf.to_container(named.algo) == OmegaConf.to_container(by_id.algo)
    assert named.preset == by_id.preset
    assert (named.preset != "none") == (find_preset(algo, env_id) is not None)
    assert named.total_steps == by_id.total_steps


def test_the_command_line_beats_the_preset() -> None:
    node = compose_run_config(["algo.lr=0.0123", "env.num_envs=3", "total_steps=777"])
    assert node.preset == "ppo_cartpole"
    assert (node.algo.lr, node.env.num_envs, node.total_steps) == (0.0123, 3, 777)
    assert node.algo.n_steps == 32  # the preset's, where the command line is silent


def test_a_config_file_the_command_line_adds_beats_the_preset() -> None:
    """+search=ppo_cartpole sets total_steps 50000 for its trials; the PPO preset says 100000."""
    assert command_line_keys(["+search=ppo_cartpole"]) >= {"total_steps"}
    node = compose_run_config(["+search=ppo_cartpole"])
    assert node.total_steps == 50_000 and node.algo.n_steps == 32


def test_preset_none_and_preset_by_name() -> None:
    plain = compose_run_config(["preset=none"])
    assert plain.preset == "none" and plain.algo.lr == 3e-4 and plain.env.num_envs == 8
    forced = compose_run_config(["env=gym", "env.id=Acrobot-v1", "preset=ppo_cartpole"])
    assert forced.preset == "ppo_cartpole" and forced.algo.n_steps == 32
    untuned = compose_run_config(["env=gym", "env.id=Acrobot-v1"])
    assert untuned.preset == "none" and untuned.algo.n_steps == 128
    with pytest.raises(UserError, match="preset=rl_zoo is not known"):
        compose_run_config(["preset=rl_zoo"])


def test_env_keys() -> None:
    assert env_key({"name": "cartpole", "id": "CartPole-v1"}) == "CartPole-v1"
    assert env_key({"name": "atari", "game": "pong"}) == "atari"
    assert env_key({"name": "gridworld", "layout": "4x4"}) == "gridworld"
