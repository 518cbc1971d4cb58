"""`rltrain export RUN --format onnx|torchscript` through the installed console script: the file
runs in onnxruntime and in `torch.jit.load` and gives the actions (and V or Q) of `rltrain.load`'s
agent on a batch of observations, for an MLP (discrete and continuous actions, actor-critic and
DQN) and for the Nature CNN on Atari frames; its metadata says what the input must be.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rltrain

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BATCH = 7


def train(run_cli, cwd: Path, args: list[str]) -> Path:
    result = run_cli([*args, "device=cpu"], cwd, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = [path.parent.parent for path in (cwd / "runs").rglob(".hydra/config.yaml")]
    return run_dir


def export(run_cli, run_dir: Path, fmt: str, out: Path) -> Path:
    args = ["export", str(run_dir), "--format", fmt, "--out", str(out), "--checkpoint", "last"]
    result = run_cli(args, out.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"to {out}" in result.stdout and out.is_file()
    return out


def observations(agent: rltrain.Agent) -> np.ndarray:
    """A batch of observations inside the agent's observation box, in its dtype."""
    space, rng = agent.observation_space, np.random.default_rng(0)
    if space.dtype == np.uint8:
        return rng.integers(0, 256, size=(BATCH, *space.shape), dtype=np.uint8)
    low = np.maximum(space.low, -3.0)
    high = np.minimum(space.high, 3.0)
    return rng.uniform(low, high, size=(BATCH, *space.shape)).astype(np.float32)


def run_onnx(path: Path, obs: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert given.name == "obs"
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"obs": obs}), strict=True))
    return outputs, dict(session.get_modelmeta().custom_metadata_map)


def run_torchscript(path: Path, obs: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    extra = {"rltrain.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    metadata = json.loads(extra["rltrain.json"])
    names = metadata["output_names"].split(",")
    with torch.no_grad():
        outputs = module(torch.from_numpy(obs))
    return {name: out.numpy() for name, out in zip(names, outputs, strict=True)}, metadata


def check_against_agent(run_dir: Path, path: Path, fmt: str, second: str) -> dict[str, str]:
    """The file's outputs on a batch equal the agent's to 1e-5; returns the file's metadata."""
    agent = rltrain.load(run_dir, checkpoint="last")
    obs = observations(agent)
    outputs, metadata = (run_onnx if fmt == "onnx" else run_torchscript)(path, obs)
    assert sorted(outputs) == sorted(["action", second])
    expected = agent.predict(obs)
    assert outputs["action"].shape == expected.shape
    np.testing.assert_allclose(outputs["action"], expected, rtol=0, atol=1e-5)
    reference = agent.value(obs) if second == "value" else agent.q_values(obs)
    np.testing.assert_allclose(outputs[second], reference, rtol=0, atol=1e-5)
    # one observation too (the batch axis is dynamic)
    single, _ = (run_onnx if fmt == "onnx" else run_torchscript)(path, obs[:1])
    np.testing.assert_allclose(single["action"], expected[:1], rtol=0, atol=1e-5)
    assert metadata["algo"] == agent.config.algo.name and metadata["producer"].startswith("rltrain")
    return metadata


@pytest.fixture(scope="module")
def ppo_run(run_cli, tmp_path_factory, tiny) -> Path:
    return train(run_cli, tmp_path_factory.mktemp("ppo"), [*tiny, "seed=1"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_ppo_cartpole_export_matches_the_agent(ppo_run, run_cli, tmp_path, fmt):
    path = export(run_cli, ppo_run, fmt, tmp_path / f"policy.{'onnx' if fmt == 'onnx' else 'pt'}")
    metadata = check_against_agent(ppo_run, path, fmt, "value")
    assert metadata["input"] == "float32 [batch, 4]"
    assert "no normalisation" in metadata["preprocessing"]
    assert metadata["network"] == "mlp" and metadata["env_id"] == "CartPole-v1"
    assert "V(s)" in metadata["outputs"]


def test_export_default_path_is_inside_the_run(ppo_run, run_cli, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(ppo_run, copy)
    result = run_cli(["export", str(copy), "--format", "torchscript"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "export" / "policy_best.pt").is_file()


@pytest.fixture(scope="module")
def dqn_run(run_cli, tmp_path_factory) -> Path:
    return train(
        run_cli, tmp_path_factory.mktemp("dqn"),
        ["algo=dqn", "total_steps=300", "algo.learning_starts=100", "env.num_envs=1",
         "eval_episodes=1", "logger.log_interval=100"],
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_dqn_export_gives_the_greedy_action_and_q_values(dqn_run, run_cli, tmp_path, fmt):
    path = export(run_cli, dqn_run, fmt, tmp_path / f"q.{'onnx' if fmt == 'onnx' else 'pt'}")
    metadata = check_against_agent(dqn_run, path, fmt, "q_values")
    assert "greedy action index in 0..1" in metadata["outputs"]


def test_continuous_actions_export_the_clipped_mean(run_cli, tmp_path):
    run_dir = train(
        run_cli, tmp_path,
        ["algo=ppo", "env=pendulum", "total_steps=256", "env.num_envs=2", "algo.n_steps=64",
         "algo.batch_size=64", "algo.n_epochs=1", "eval_episodes=1", "logger.log_interval=128"],
    )  # fmt: skip
    for fmt, name in (("onnx", "p.onnx"), ("torchscript", "p.pt")):
        path = export(run_cli, run_dir, fmt, tmp_path / name)
        metadata = check_against_agent(run_dir, path, fmt, "value")
        assert "the mean action, clipped to the box [[-2.0], [2.0]]" in metadata["outputs"]


@pytest.mark.atari
def test_atari_cnn_export_matches_the_agent_on_uint8_frames(run_cli, tmp_path):
    pytest.importorskip("ale_py")
    run_dir = train(
        run_cli, tmp_path,
        ["algo=ppo", "env=atari", "total_steps=128", "env.num_envs=2", "algo.n_steps=64",
         "algo.batch_size=64", "algo.n_epochs=1", "eval_episodes=1",
         "env.max_episode_frames=400", "logger.log_interval=128"],
    )  # fmt: skip
    for fmt, name in (("onnx", "cnn.onnx"), ("torchscript", "cnn.pt")):
        path = export(run_cli, run_dir, fmt, tmp_path / name)
        metadata = check_against_agent(run_dir, path, fmt, "value")
        assert metadata["input"] == "uint8 [batch, 4, 84, 84]"
        assert metadata["network"] == "nature_cnn"
        assert "grayscale" in metadata["preprocessing"] and "84x84" in metadata["preprocessing"]


def test_export_mistakes_give_one_line(ppo_run, run_cli, tmp_path, one_error_line):
    message = one_error_line(run_cli(["export", str(ppo_run), "--format", "tflite"], tmp_path))
    assert message == "--format tflite: use onnx or torchscript"
    message = one_error_line(run_cli(["export", str(tmp_path), "--format", "onnx"], tmp_path))
    assert "is not an rltrain run directory" in message
    tabular = train(run_cli, tmp_path, ["algo=q_learning", "env=gridworld", "total_steps=200"])
    message = one_error_line(run_cli(["export", str(tabular), "--format", "onnx"], tmp_path))
    assert message.startswith("algo=q_learning has no neural-network policy to export")
