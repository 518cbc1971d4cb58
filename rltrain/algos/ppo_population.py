"""PPO for a population: the K seeds of one job trained as one batched program
(`num_seeds=K parallel_seeds=true`), each seed learning as the one-seed PPO of ppo.py would. What
the population is (stacked weights, one generator per seed, each seed's own run) is in
rltrain/algos/population.py; this file is PPO's update over its [K, B] batches.
"""

from __future__ import annotations

import torch
from torch import nn

from rltrain.algos.actor_critic import Rollout, anneal_lr
from rltrain.algos.population import ActorCriticPopulation
from rltrain.algos.ppo import ppo_loss
from rltrain.blocks.optim import Adam, FlatOptimizer
from rltrain.blocks.schedules import linear
from rltrain.blocks.stats import standardize
from rltrain.config.algos import PPOConfig
from rltrain.tags import APPROX_KL, CLIP_FRACTION, GRAD_NORM


class PPOPopulation(ActorCriticPopulation):
    """K PPO agents on K blocks of one batched env."""

    cfg: PPOConfig

    def make_optimizer(self, params: list[nn.Parameter]) -> FlatOptimizer:
        return Adam(params, lr=self.cfg.lr, eps=self.cfg.optimizer_eps)

    def update(self, rollout: Rollout) -> None:
        """ppo.py's `PPO.update`, over [K, B] batches (population.py says what is per seed); the
        hand-written pass only, so `algo.manual_backward` does not apply here."""
        cfg, K = self.cfg, self.K
        progress = self.contexts[0].progress  # every seed has taken the same steps
        lr = anneal_lr(self.optimizer, cfg.lr, cfg.anneal_lr, progress)
        clip = linear(cfg.clip_coef, 0.0, progress) if cfg.anneal_clip else cfg.clip_coef
        clip = max(clip, 1e-8)
        obs, actions, old_log_probs, old_values, advantages, returns = (
            self._seed_major(x) for x in rollout
        )
        size = obs.shape[1]
        batch = min(cfg.batch_size, size)
        normalize = cfg.normalize_advantages and batch > 1
        whole = batch == size  # in order, standardized once: as ppo.py, for the same reasons
        whole_advantages = standardize(advantages) if whole and normalize else advantages
        value_clip = clip if cfg.clip_value_loss else None
        stats: list[torch.Tensor] = []
        for _ in range(cfg.n_epochs):
            order = None if whole else torch.stack([
                torch.randperm(size, generator=g, device=self.device) for g in self.generators
            ])  # fmt: skip
            for start in range(0, size - batch + 1, batch):
                if order is None:
                    mb_obs, mb_actions = obs, actions
                    mb: tuple[torch.Tensor, ...] = (old_log_probs, old_values, returns)
                    adv = whole_advantages
                else:
                    idx = order[:, start : start + batch]
                    mb_obs = obs.gather(1, idx.unsqueeze(-1).expand(-1, -1, obs.shape[-1]))
                    mb_actions = actions.gather(1, idx)
                    mb = tuple(x.gather(1, idx) for x in (old_log_probs, old_values, returns))
                    adv = advantages.gather(1, idx)
                    adv = standardize(adv) if normalize else adv
                out = self.gradients.evaluate(mb_obs, mb_actions)
                terms = ppo_loss(
                    out, mb[0], adv, mb[2], mb[1], clip, value_clip, cfg.vf_coef, cfg.ent_coef,
                    closed_form=True,
                )  # fmt: skip
                self.gradients.backward(out, terms.loss)
                grad_norm = self.optimizer.clip_grad_norm_rows(cfg.max_grad_norm, K)
                self.optimizer.step()
                stats.append(torch.stack([
                    terms.policy_loss, terms.value_loss, terms.entropy, terms.approx_kl,
                    terms.clip_fraction, grad_norm,
                ]))  # fmt: skip
        means = torch.stack(stats).mean(0)  # [6, K]
        for k, member in enumerate(self.members):
            member.record_update(
                means[:, k], (APPROX_KL, CLIP_FRACTION, GRAD_NORM), lr,
                (old_values[k], advantages[k], returns[k]),
            )  # fmt: skip


