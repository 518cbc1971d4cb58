"""The Python API (rltrain/api.py): `rltrain.train` trains in this process and hands back the run,
`rltrain.load` gives an agent whose `predict` plays the episodes `rltrain eval` reports, and
mistakes raise `rltrain.UserError` with one line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rltrain
from rltrain.runner.evaluate import EVAL_SEED_OFFSET


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]) -> rltrain.TrainResult:
    """A tiny PPO/CartPole run trained through `rltrain.train`, in this process, on gymnasium's own
    CartPole envs (sync vectorization), so that a plain `gym.make` replays its evaluation."""
    cwd = tmp_path_factory.mktemp("api")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        return rltrain.train([*tiny, "seed=3", "env.vectorization=sync"])


def test_train_returns_the_run_dir_and_its_final_metrics(api_run, tmp_path_factory):
    run_dir, metrics = api_run
    assert run_dir.is_dir() and (run_dir / "checkpoints" / "best.pt").is_file()
    assert run_dir.parts[-4:-1] == ("runs", "cartpole", "ppo")
    assert metrics == json.loads((run_dir / "summary.json").read_text())
    assert metrics["seed"] == 3 and metrics["steps"] == 512
    assert np.isfinite(metrics["eval_return_mean"])


def play(agent: rltrain.Agent, episodes: int, seed: int) -> list[float]:
    """Episodes of CartPole played with `agent.predict` on one plain env each, seeded as
    `rltrain eval --seed SEED` seeds its vector env (sub-env i gets SEED + offset + i)."""
    returns = []
    for index in range(episodes):
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=seed + EVAL_SEED_OFFSET + index)
        total, done = 0.0, False
        while not done:
            action = agent.predict(obs)
            assert action.shape == () and action.dtype.kind == "i"
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        env.close()
        returns.append(total)
    return returns


def test_predict_plays_the_episodes_that_rltrain_eval_reports(api_run, run_cli, workdir):
    run_dir, _ = api_run
    agent = rltrain.load(run_dir, checkpoint="best")
    assert agent.step == 512 and agent.checkpoint == run_dir / "checkpoints" / "best.pt"
    result = run_cli(
        ["eval", str(run_dir), "--episodes", "3", "--seed", "7", "--checkpoint", "best"], workdir
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reported = [float(value) for value in _episode_returns(result.stdout)]
    assert reported == pytest.approx(play(agent, 3, seed=7), abs=0.005)


def _episode_returns(stdout: str) -> list[str]:
    import re

    return re.findall(r"^episode\s+\d+: return ([\d.]+)$", stdout, flags=re.M)


def test_predict_and_value_take_one_observation_or_a_batch(api_run):
    run_dir, _ = api_run
    agent = rltrain.load(run_dir)
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    actions, values = agent.predict(obs), agent.value(obs)
    assert actions.shape == (6,) and set(actions.tolist()) <= {0, 1}
    assert values.shape == (6,) and values.dtype == np.float32
    for index in range(6):
        assert agent.predict(obs[index]) == actions[index]
        assert agent.value(obs[index].tolist()) == pytest.approx(values[index], abs=1e-6)
    # the greedy action of a stochastic policy: the same every call
    assert (agent.predict(obs, deterministic=True) == actions).all()
    with pytest.raises(rltrain.UserError, match=r"has no action-value .*agent\.value\(obs\)"):
        agent.q_values(obs)
    with pytest.raises(rltrain.UserError, match=r"shape \(3,\) does not fit .*shape \(4,\)"):
        agent.predict(np.zeros(3))


def test_load_takes_a_checkpoint_file(api_run):
    run_dir, _ = api_run
    agent = rltrain.load(run_dir / "checkpoints" / "last.pt")
    assert agent.checkpoint == run_dir / "checkpoints" / "last.pt" and agent.step == 512
    assert agent.run_dir == run_dir


def test_dqn_agent_has_q_values_whose_argmax_is_its_action(tmp_path, monkeypatch):
    """Two envs: the checkpoint's per-env replay state must fit the agent that loads it."""
    monkeypatch.chdir(tmp_path)
    run_dir, _ = rltrain.train(
        ["algo=dqn", "total_steps=300", "algo.learning_starts=100", "env.num_envs=2",
         "eval_episodes=1", "device=cpu", "logger.log_interval=100"]
    )  # fmt: skip
    agent = rltrain.load(run_dir, checkpoint="last")
    obs = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    q_values = agent.q_values(obs)
    assert q_values.shape == (8, 2)
    assert (agent.predict(obs) == q_values.argmax(axis=1)).all()
    assert agent.q_values(obs[2]) == pytest.approx(q_values[2])
    with pytest.raises(rltrain.UserError, match=r"no state-value .*agent\.q_values\(obs\)"):
        agent.value(obs)


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("missing", r"does not exist; give a run directory"),
        ("not_a_run", r"is not an rltrain run directory \(no \.hydra/config\.yaml\)"),
        ("stray_file", r"is not in a run's checkpoints/ directory"),
        ("no_checkpoints", r"checkpoint .*checkpoints/best\.pt does not exist"),
        ("bad_choice", r"checkpoint='worst': use 'best' or 'last'"),
    ],
)
def test_bad_paths_raise_one_clear_user_error(api_run, tmp_path, what, message):
    run_dir, _ = api_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    path: Path = {
        "missing": tmp_path / "nowhere",
        "not_a_run": tmp_path,
        "stray_file": copy / "summary.json",
        "no_checkpoints": copy,
        "bad_choice": copy,
    }[what]
    if what == "no_checkpoints":
        shutil.rmtree(copy / "checkpoints")
    with pytest.raises(rltrain.UserError, match=message) as raised:
        rltrain.load(path, checkpoint="worst" if what == "bad_choice" else "best")
    assert "\n" not in str(raised.value)


def test_train_rejects_flags_and_bad_overrides_with_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(rltrain.UserError, match=r"key=value overrides only, not -m"):
        rltrain.train(["-m", "seed=0,1"])
    with pytest.raises(rltrain.UserError, match=r"list of overrides"):
        rltrain.train("algo=ppo")  # type: ignore[arg-type]
    with pytest.raises(rltrain.UserError, match=r"algo.lrr") as raised:
        rltrain.train(["algo.lrr=0.1", "device=cpu"])
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))


def test_import_rltrain_stays_free_of_torch():
    """`import rltrain` is what the CLI pays at start-up: the API's heavy imports wait."""
    code = "import sys, rltrain; print('torch' in sys.modules, callable(rltrain.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
