"""DQN through the installed CLI with tiny budgets: every flag on CartPole, image observations,
and one clear line for each impossible or invalid setting.

The image-observation env (`RltrainTestFrames-v0`, defined here) is registered with gymnasium when
this module is imported; the CLI subprocess imports it first (`python -c "import ...; main()"`),
as a user's own env package would be imported before `rltrain` runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

FRAMES_ID = "RltrainTestFrames-v0"


class FrameStackEnv(gym.Env[np.ndarray, np.int64]):
    """A bright column on an 84x84 screen, 4 stacked uint8 frames like Atari observations.

    Actions move the column left / keep it / move it right; reward 1 while it is within 10 pixels
    of the centre; the episode terminates when it leaves the screen (registered with a 40-step
    time limit, so truncations happen too). Each step pushes one new frame on the stack, so the
    frame-deduplicating replay buffer sees sliding stacks, and resets give a fresh stack.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self._stack = np.zeros((4, 84, 84), dtype=np.uint8)
        self._pos = 42

    def _frame(self) -> np.ndarray:
        frame = np.zeros((84, 84), dtype=np.uint8)
        frame[:, self._pos] = 255
        return frame

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = int(self.np_random.integers(30, 54))
        self._stack[:] = self._frame()
        return self._stack.copy(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._pos += int(action) - 1 + int(self.np_random.integers(-2, 3))
        terminated = not 0 <= self._pos < 84
        self._pos = min(max(self._pos, 0), 83)
        self._stack[:-1] = self._stack[1:]
        self._stack[-1] = self._frame()
        reward = float(abs(self._pos - 42) <= 10)
        return self._stack.copy(), reward, terminated, False, {}


if FRAMES_ID not in gym.registry:
    gym.register(FRAMES_ID, entry_point=FrameStackEnv, max_episode_steps=40)

# Tiny DQN budgets: a few update phases, a 2-episode evaluation, CPU.
CARTPOLE_TINY = [
    "algo=dqn",
    "env=cartpole",
    "total_steps=1200",
    "algo.learning_starts=400",
    "algo.train_freq=64",
    "algo.gradient_steps=4",
    "eval_episodes=2",
    "logger.log_interval=256",
    "device=cpu",
]
IMAGE_TINY = [
    "algo=dqn",
    "env=gym",
    f"env.id={FRAMES_ID}",
    "env.num_envs=2",
    "total_steps=240",
    "algo.learning_starts=100",
    "algo.train_freq=4",
    "algo.batch_size=8",
    "algo.buffer_size=1000",
    "algo.target_update_interval=50",
    "eval_episodes=2",
    "logger.log_interval=64",
    "device=cpu",
]
DQN_TAGS = {
    "losses/td_loss",
    "values/td_error",
    "values/q_mean",
    "values/q_max",
    "values/v_mean",
    "values/advantage_mean",
    "values/advantage_std",
    "values/q_bias",
    "charts/epsilon",
}

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def check_run(
    result: subprocess.CompletedProcess[str],
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    summary_of: Callable[[Path], dict[str, Any]],
    tb_scalars: Callable[[Path], dict[str, list[tuple[int, float]]]],
    steps: int,
) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    summary = summary_of(run_dir)
    assert summary["algo"] == "dqn" and summary["steps"] == steps
    assert np.isfinite(summary["eval_return_mean"])
    scalars = tb_scalars(run_dir)
    missing = DQN_TAGS - set(scalars)
    assert not missing, f"missing TensorBoard tags: {missing}"
    for tag in DQN_TAGS:
        assert all(np.isfinite(v) for _, v in scalars[tag]), tag
    assert (run_dir / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["algo.double=true"],
        ["network.dueling=true"],
        ["algo.n_steps=3"],
        ["algo.prioritized=true"],
        ["algo.double=true", "network.dueling=true", "algo.n_steps=3", "algo.prioritized=true"],
    ],
    ids=["vanilla", "double", "dueling", "n_step3", "prioritized", "all"],
)
def test_dqn_cartpole_flags(
    flags: list[str],
    run_cli: Runner,
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    summary_of: Callable[[Path], dict[str, Any]],
    tb_scalars: Callable[[Path], dict[str, list[tuple[int, float]]]],
) -> None:
    result = run_cli([*CARTPOLE_TINY, *flags], workdir)
    check_run(result, workdir, find_run_dirs, summary_of, tb_scalars, 1200)


def _cli_with_frames_env(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI's own entry point, in a fresh interpreter that imported this module first."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "RLTRAIN_JOB_THREADS": "1", "NO_COLOR": "1"})
    env.pop("HYDRA_FULL_ERROR", None)
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import test_dqn_smoke; "
        "from rltrain.cli import main; sys.argv[0] = 'rltrain'; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("flags", [[], ["network.dueling=true", "algo.n_steps=3"]])
def test_dqn_on_image_observations(
    flags: list[str],
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    summary_of: Callable[[Path], dict[str, Any]],
    tb_scalars: Callable[[Path], dict[str, list[tuple[int, float]]]],
) -> None:
    result = _cli_with_frames_env([*IMAGE_TINY, *flags], workdir)
    check_run(result, workdir, find_run_dirs, summary_of, tb_scalars, 240)
    (run_dir,) = find_run_dirs(workdir / "runs")
    import torch

    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    # Nature CNN (auto for uint8 images) and the frame buffer, which stores frames, not stacks
    assert any(k.startswith("trunk.convs") for k in state["algo_state"]["q_net"])
    assert "frames" in state["algo_state"]["buffer"]


def _atari_available() -> bool:
    try:
        import ale_py  # noqa: F401

        from rltrain.config.envs import ENV_SCHEMAS
    except ImportError:
        return False
    return "atari" in ENV_SCHEMAS


@pytest.mark.atari
@pytest.mark.skipif(not _atari_available(), reason="env=atari or ale-py is not available")
def test_dqn_on_atari_tiny(
    run_cli: Runner,
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    summary_of: Callable[[Path], dict[str, Any]],
    tb_scalars: Callable[[Path], dict[str, list[tuple[int, float]]]],
) -> None:
    args = [
        "algo=dqn",
        "env=atari",
        "env.num_envs=2",
        "total_steps=400",
        "algo.learning_starts=100",
        "algo.batch_size=8",
        "algo.buffer_size=2000",
        "eval_episodes=1",
        "env.max_episode_frames=400",
        "logger.log_interval=100",
        "device=cpu",
    ]
    result = run_cli(args, workdir, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    assert summary_of(run_dir)["steps"] == 400


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["env=gym", "env.id=Pendulum-v1"], "algo=ppo"),
        (["algo.n_steps=0"], "algo.n_steps=0"),
        (["algo.buffer_size=-1"], "algo.buffer_size=-1"),
        (["algo.prioritized=true", "algo.priority_alpha=1.5"], "algo.priority_alpha=1.5"),
    ],
    ids=["continuous_actions", "n_step_0", "negative_buffer", "alpha_out_of_range"],
)
def test_dqn_bad_input_is_one_line(
    args: list[str],
    words: str,
    run_cli: Runner,
    workdir: Path,
    one_error_line: Callable[[subprocess.CompletedProcess[str]], str],
) -> None:
    message = one_error_line(run_cli(["algo=dqn", *args, "device=cpu"], workdir))
    assert words in message
    assert not (workdir / "runs").exists() or not any((workdir / "runs").rglob("*.pt"))
