"""A2C for a population: the K seeds of one job trained as one batched program
(`num_seeds=K parallel_seeds=true`), each seed learning as the one-seed A2C of a2c.py would. What
the population is (stacked weights, one generator per seed, each seed's own run) is in
rltrain/algos/population.py; this file is A2C's update: one gradient step per rollout over the
[K, n_steps x num_envs] batch.
"""

from __future__ import annotations

import torch
from torch import nn

from rltrain.algos.actor_critic import Rollout, actor_critic_loss, anneal_lr, make_optimizer
from rltrain.algos.population import ActorCriticPopulation
from rltrain.blocks.optim import FlatOptimizer
from rltrain.blocks.stats import standardize
from rltrain.config.algos import A2CConfig
from rltrain.tags import GRAD_NORM


class A2CPopulation(ActorCriticPopulation):
    """K A2C agents on K blocks of one batched env."""

    cfg: A2CConfig

    def make_optimizer(self, params: list[nn.Parameter]) -> FlatOptimizer:
        cfg = self.cfg
        return make_optimizer(params, cfg.optimizer, cfg.lr, cfg.rms_alpha, cfg.optimizer_eps)

    def update(self, rollout: Rollout) -> None:
        """a2c.py's `A2C.iterate` after the rollout, over [K, B] batches (population.py says what
        is per seed); the hand-written pass only, so `algo.manual_backward` does not apply."""
        cfg = self.cfg
        lr = anneal_lr(self.optimizer, cfg.lr, cfg.anneal_lr, self.contexts[0].progress)
        obs, actions, _, values, advantages, returns = (self._seed_major(x) for x in rollout)
        # each seed's advantages standardized over its own batch, as a2c.py's `flat_batch`
        normalize = cfg.normalize_advantages and advantages.shape[1] > 1
        out = self.gradients.evaluate(obs, actions)
        loss, (policy_loss, value_loss, entropy) = actor_critic_loss(
            out, standardize(advantages) if normalize else advantages, returns, cfg.vf_coef,
            cfg.ent_coef, closed_form=True,
        )  # fmt: skip
        self.gradients.backward(out, loss)
        grad_norm = self.optimizer.clip_grad_norm_rows(cfg.max_grad_norm, self.K)
        self.optimizer.step()
        stats = torch.stack([policy_loss, value_loss, entropy, grad_norm])  # [4, K]
        for k, member in enumerate(self.members):
            member.record_update(
                stats[:, k], (GRAD_NORM,), lr, (values[k], advantages[k], returns[k])
            )
