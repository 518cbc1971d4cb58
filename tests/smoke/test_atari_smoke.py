"""`rltrain algo=dqn env=atari` and `algo=ppo env=atari` start at once on a CPU with the tuned
presets (tiny budgets here), Pong too; bad Atari settings fail before training with one line.

The budgets keep every run to seconds: 2 envs, short rollouts, a small replay buffer, one
evaluation game cut at 2000 frames (`env.max_episode_frames`), and the preset's other values.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

pytestmark = pytest.mark.atari
pytest.importorskip("ale_py")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]

COMMON = [
    "env.num_envs=2",
    "eval_episodes=1",
    "env.max_episode_frames=2000",
    "logger.log_interval=128",
    "device=cpu",
]
TINY = {
    "ppo": ["total_steps=512", "algo.n_steps=64", "algo.batch_size=64", "algo.n_epochs=1"],
    "dqn": [
        "total_steps=512",
        "algo.learning_starts=128",
        "algo.buffer_size=1000",
        "algo.batch_size=8",
        "algo.target_update_interval=64",
    ],
}
# what each tuned preset sets (rltrain/tuned/<algo>_atari.yaml), checked in the saved config
PRESET = {
    "ppo": {
        "network.shared_trunk": True,
        "algo.clip_coef": 0.1,
        "algo.anneal_clip": True,
        "algo.lr": 2.5e-4,
        "algo.n_epochs": 1,  # overridden here (the preset's 4)
        "algo.ent_coef": 0.01,
        "eval_epsilon": 0.05,
    },
    "dqn": {
        "algo.lr": 1e-4,
        "algo.train_freq": 4,
        "algo.epsilon_end": 0.01,
        "algo.max_grad_norm": 10.0,
        "eval_epsilon": 0.05,
    },
}


def _value(config: Any, dotted: str) -> Any:
    return OmegaConf.select(config, dotted)


@pytest.mark.parametrize(
    ("algo", "game"),
    [("ppo", "breakout"), ("dqn", "breakout"), ("ppo", "pong")],
    ids=["ppo-breakout", "dqn-breakout", "ppo-pong"],
)
def test_atari_trains_with_the_tuned_preset(
    algo: str,
    game: str,
    run_cli: Runner,
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    summary_of: Callable[[Path], dict[str, Any]],
    tb_scalars: Callable[[Path], dict[str, list[tuple[int, float]]]],
) -> None:
    args = [f"algo={algo}", "env=atari", f"env.game={game}", *COMMON, *TINY[algo]]
    result = run_cli(args, workdir, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    summary = summary_of(run_dir)
    assert summary["steps"] == 512
    assert summary["eval_episodes"] == 1
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.env.game == game
    for key, expected in PRESET[algo].items():
        assert _value(config, key) == pytest.approx(expected), key

    scalars = tb_scalars(run_dir)
    assert scalars["charts/sps"], "no training scalars"
    assert "values/v_mean" in scalars
    # the final evaluation plays one whole game with raw rewards (cut at 2000 frames)
    assert len(scalars["eval/return_mean"]) == 1

    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    weights = state["algo_state"]["net" if algo == "ppo" else "q_net"]
    # the Nature CNN (auto for uint8 frames); PPO's policy and value heads share one trunk
    prefix = "actor_trunk.convs" if algo == "ppo" else "trunk.convs"
    assert any(k.startswith(prefix) for k in weights)
    if algo == "ppo":
        assert not any("critic_trunk" in k for k in weights)
        assert state["algo_state"]["obs"].dtype == torch.uint8


def test_ppo_keeps_frames_uint8_until_the_network(tmp_path: Path) -> None:
    """The rollout stores uint8 stacks (4x less memory than float32); only the CNN scales them."""

    from rltrain.algos.base import Context
    from rltrain.algos.ppo import PPO
    from rltrain.config.store import compose_run_config
    from rltrain.config.validate import typed_config
    from rltrain.envs.factory import make_vec_env
    from rltrain.logging import Recorder
    from rltrain.networks.builders import NatureCNN

    node = compose_run_config(
        ["algo=ppo", "env=atari", "env.num_envs=2", "algo.n_steps=8", "algo.batch_size=16",
         "device=cpu"]
    )
    cfg = typed_config(node)
    env = make_vec_env(cfg.env, num_envs=2, seed=0, training=True)
    try:
        ctx = Context(
            cfg=cfg, env=env, device=torch.device("cpu"), recorder=Recorder(None, False),
            rng=np.random.default_rng(0), run_dir=None,
        )  # fmt: skip
        ppo = PPO(cfg.algo, ctx)
        assert ppo.collector.obs_buf.dtype == np.uint8  # frames stay bytes until the network
        assert tuple(ppo.collector.obs_buf.shape) == (8, 2, 4, 84, 84)
        assert isinstance(ppo.net.actor_trunk, NatureCNN)
        assert ppo.net.critic_trunk is ppo.net.actor_trunk
        rollout = ppo.collect()
        assert rollout.obs.dtype == torch.uint8
        # frames are stacked in time: the newest frame of step t is the second newest of t + 1
        # wherever no episode ended in between (a lost life keeps the stack)
        stacks = rollout.obs
        assert torch.equal(stacks[1:, :, :-1], stacks[:-1, :, 1:])
        assert int(stacks.max()) > 0
    finally:
        env.close()


@pytest.mark.parametrize(
    ("algo", "args", "words"),
    [
        ("ppo", ["env.game=brekout"], "did you mean breakout"),
        ("dqn", ["env.game=space_invader"], "did you mean space_invaders"),
        ("ppo", ["env.frame_stack=0"], "env.frame_stack=0 must be at least 1"),
        ("dqn", ["env.frame_stack=0"], "env.frame_stack=0 must be at least 1"),
        ("ppo", ["env.frame_skip=0"], "env.frame_skip=0 must be at least 1"),
        ("dqn", ["env.game=zzqx"], "env.game=zzqx is not an ALE game; known games: "),
        ("dqn", ["env.repeat_action_probability=1.5"], "env.repeat_action_probability=1.5"),
        ("ppo", ["env.backend=envpool"], "env.backend=envpool is not known"),
    ],
    ids=[
        "typo-game",
        "close-game",
        "ppo-frame_stack_0",
        "dqn-frame_stack_0",
        "frame_skip_0",
        "no-close-game",
        "sticky",
        "backend",
    ],
)
def test_bad_atari_settings_fail_before_training(
    algo: str,
    args: list[str],
    words: str,
    run_cli: Runner,
    workdir: Path,
    one_error_line: Callable[[subprocess.CompletedProcess[str]], str],
) -> None:
    message = one_error_line(run_cli([f"algo={algo}", "env=atari", *args, "device=cpu"], workdir))
    assert words in message, message
    if "known games" in words:  # no close match: every game is listed, the usual ones too
        assert all(game in message for game in ("breakout", "pong", "space_invaders")), message
    # nothing trained: no checkpoint, no TensorBoard events
    runs = workdir / "runs"
    assert not runs.exists() or not any(runs.rglob("*.pt"))
    assert not runs.exists() or not any(runs.rglob("events.out.tfevents.*"))
