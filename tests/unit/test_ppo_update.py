"""PPO's update phase: a minibatch that is the whole rollout is order-free, and the value
diagnostics report the rollout's own advantages (not the standardized ones the loss uses)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain.algos.base import Context
from rltrain.algos.ppo import PPO, Rollout
from rltrain.config.algos import PPOConfig
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config
from rltrain.envs.factory import make_vec_env
from rltrain.logging import Recorder

torch.set_num_threads(1)

T, N = 16, 4  # 64 transitions


def make_ppo(batch_size: int, clip_value_loss: bool = False) -> PPO:
    torch.manual_seed(0)
    cfg = PPOConfig(
        n_steps=T, batch_size=batch_size, n_epochs=3, lr=1e-2, clip_value_loss=clip_value_loss
    )
    env_cfg = GymEnvConfig(name="cartpole", id="CartPole-v1")
    ctx = Context(
        cfg=Config(algo=cfg, env=env_cfg, seed=0, total_steps=10_000),
        env=make_vec_env(env_cfg, num_envs=N, seed=0, training=True),
        device=torch.device("cpu"), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(0), run_dir=None,
    )  # fmt: skip
    return PPO(cfg, ctx)


def rollout_from(ppo: PPO) -> Rollout:
    rollout = ppo.collect()
    # advantages with a clear mean and spread, so standardizing them visibly changes them
    advantages = torch.linspace(-1.0, 3.0, T * N).reshape(T, N)
    return rollout._replace(
        obs=rollout.obs.clone(), actions=rollout.actions.clone(),
        log_probs=rollout.log_probs.clone(), values=rollout.values.clone(),
        advantages=advantages, returns=advantages + rollout.values,
    )  # fmt: skip


def permuted(rollout: Rollout, seed: int) -> Rollout:
    """The same transitions in another order (flattened, shuffled, reshaped)."""
    order = torch.randperm(T * N, generator=torch.Generator().manual_seed(seed))
    return Rollout(*(x.flatten(0, 1)[order].reshape(x.shape) for x in rollout))


@pytest.mark.parametrize("clip_value_loss", [False, True])
def test_whole_rollout_minibatch_update_does_not_depend_on_the_order(
    clip_value_loss: bool,
) -> None:
    first = make_ppo(batch_size=T * N, clip_value_loss=clip_value_loss)
    second = make_ppo(batch_size=T * N, clip_value_loss=clip_value_loss)
    rollout = rollout_from(first)
    before = first.optimizer.flat.clone()
    assert torch.equal(before, second.optimizer.flat)
    first.update(rollout)
    second.update(permuted(rollout, seed=1))
    assert not torch.allclose(first.optimizer.flat, before)  # three epochs moved the weights
    torch.testing.assert_close(first.optimizer.flat, second.optimizer.flat, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("batch_size", "steps"), [(T * N, 3), (16, 12), (40, 3)])
def test_one_optimizer_step_per_minibatch(batch_size: int, steps: int) -> None:
    # 3 epochs x (64 // batch_size) full minibatches; a remainder smaller than a batch is skipped
    ppo = make_ppo(batch_size)
    ppo.update(rollout_from(ppo))
    assert int(ppo.optimizer.steps) == steps


@pytest.mark.parametrize("batch_size", [T * N, 16])
def test_value_diagnostics_report_the_rollouts_own_advantages(batch_size: int) -> None:
    ppo = make_ppo(batch_size)
    rollout = rollout_from(ppo)
    ppo.update(rollout)
    stats = ppo.ctx.recorder.flush(step=T * N)
    assert stats["values/advantage_mean"] == pytest.approx(1.0, abs=1e-5)  # mean of -1..3
    assert stats["values/advantage_std"] == pytest.approx(float(rollout.advantages.std()), 1e-5)
    assert stats["values/q_mean"] == pytest.approx(float(rollout.returns.mean()), abs=1e-5)
