"""A NaN/inf in a loss stops the run with one line, and the last checkpoint is good."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

RLTRAIN = str(Path(sys.executable).parent / "rltrain")


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "total_steps=1024", "checkpoint_interval=512", "logger.log_interval=256",
        "logger.progress=none", f"hydra.run.dir={run}", "algo.anneal_lr=false",
    ]
    subprocess.run([RLTRAIN, *args], check=True, stdout=subprocess.DEVNULL)
    good = torch.load(run / "checkpoints" / "last.pt", weights_only=True)

    # Continue the finished run with a learning rate that blows the weights up: the saved
    # config is what `resume` reads, so this injects the fault without a test hook in the code.
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.algo.lr = 1e30
    config.total_steps = 4096
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    (run / "summary.json").unlink()
    result = subprocess.run([RLTRAIN, "resume", str(run)], capture_output=True, text=True)

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rltrain: error: non-finite ")
    assert "at step" in lines[0] and "last good checkpoint" in lines[0]
    after = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert after["step"] == good["step"] == 1024  # nothing non-finite was written
    for tensor in after["algo_state"]["net"].values():
        assert torch.isfinite(tensor).all()


# A gymnasium env whose reward turns NaN (or its observation inf) at step 5: it stands for a
# user's env with a bug. Registered by importing the module (`env.id=nan_env:NanReward-v0`).
_NAN_ENV = '''
import gymnasium as gym
import numpy as np


class Broken(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, what="reward", render_mode=None):
        self.what, self.t = what, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        bad = self.t == 5
        obs = np.full(3, np.inf if bad and self.what == "obs" else 0.0, np.float32)
        reward = float("nan") if bad and self.what == "reward" else 1.0
        return obs, reward, False, self.t >= 20, {}


gym.register("NanReward-v0", entry_point=Broken, kwargs={"what": "reward"})
gym.register("InfObs-v0", entry_point=Broken, kwargs={"what": "obs"})
'''


@pytest.mark.parametrize(
    ("env_id", "algo", "what"),
    [("NanReward-v0", "ppo", "reward"), ("InfObs-v0", "dqn", "observation"),
     ("NanReward-v0", "a2c", "reward")],
)  # fmt: skip
def test_a_non_finite_env_step_is_refused_where_it_enters(
    env_id, algo, what, run_cli, workdir, one_error_line
):
    (workdir / "nan_env.py").write_text(_NAN_ENV)
    env = {**os.environ, "PYTHONPATH": str(workdir), "OMP_NUM_THREADS": "1"}
    run = workdir / "run"
    args = [
        f"algo={algo}", "env=gym", f"env.id=nan_env:{env_id}", "env.num_envs=2",
        "total_steps=4096", "checkpoint_interval=0", "logger.progress=none",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    message = one_error_line(run_cli(args, workdir, env=env))
    assert message.startswith(f"the env returned a non-finite {what}"), message
    # it stopped where the value came in: no summary, no checkpoint holding it
    assert not (run / "summary.json").exists()
    assert not list(run.rglob("*.pt")), "a checkpoint was written after a NaN came in"
