"""GRPO: group relative policy optimisation (Shao et al. 2024, DeepSeekMath), on env=text.

Read top to bottom: each iteration samples `algo.group_size` completions for each of env.num_envs
prompts; every token of a completion gets its group-normalised advantage
A = (R - mean_group R) / std_group R (no value network); the loss per token is the clipped
surrogate plus beta times the k3 estimate of KL(pi || pi_ref), averaged over each completion's
tokens and then over completions (the paper's eq. 3). With `algo.rloo` the advantage is the
leave-one-out baseline of RLOO (Ahmadian et al. 2024) instead. Hyperparameters: `GRPOConfig`
(rltrain/config/algos.py); beta is env.beta, the objective's own KL coefficient.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rltrain import tags
from rltrain.algos.actor_critic import anneal_lr, record_losses
from rltrain.algos.base import Algorithm, Context, check_iteration_fits
from rltrain.algos.token_rl import completion_run
from rltrain.algos.value_estimates import record_histograms
from rltrain.blocks.optim import Adam
from rltrain.blocks.token_rewards import group_advantages, k3_kl
from rltrain.config.algos import GRPOConfig
from rltrain.envs.render_tokens import TokenRow, token_table
from rltrain.envs.vec import Episodes

SHOWN_PER_GROUP = 4  # completions of each shown prompt in the picture (a group is larger)


def grpo_loss(
    log_probs: Tensor, old_log_probs: Tensor, ref_log_probs: Tensor, advantages: Tensor,
    mask: Tensor, clip: float, beta: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """L = mean_i 1/|y_i| sum_t [-min(r_it A_i, clip(r_it, 1-eps, 1+eps) A_i) + beta k3_it],

    r_it = pi(a_t|s_t) / pi_old(a_t|s_t); [B, L] tensors, [B] advantages. Returns the loss, the
    mean k3 KL per token and the clip fraction (both detached)."""
    ratio = (log_probs - old_log_probs).exp()
    adv = advantages[:, None]
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    kl = k3_kl(log_probs, ref_log_probs)
    per_token = -surrogate + beta * kl
    lengths = mask.sum(1).clamp(min=1.0)
    loss = ((per_token * mask).sum(1) / lengths).mean()
    tokens = mask.sum().clamp(min=1.0)
    clipped = (((ratio - 1).abs() > clip).float() * mask).sum() / tokens
    return loss, ((kl * mask).sum() / tokens).detach(), clipped.detach()


class GRPO(Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        pass  # config validation admits env=text and env=llm only (rltrain/config/validate.py)

    def __init__(self, cfg: GRPOConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.text = completion_run(ctx)
        self.net = self.text.new_policy()
        trainable = [p for p in self.net.parameters() if p.requires_grad]  # LoRA: adapters
        self.optimizer = Adam(trainable, lr=cfg.lr, eps=cfg.optimizer_eps)
        self.num_prompts = ctx.env.num_envs
        tokens = self.num_prompts * cfg.group_size * self.text.task.max_new_tokens
        check_iteration_fits(
            ctx, "grpo", tokens, "env.num_envs x algo.group_size x env.max_new_tokens"
        )
        # Q = R, V = the group mean and A of the latest iteration's completions (histograms)
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        return self.text.act(self.net, obs, deterministic)

    def iterate(self) -> int:
        cfg, rec = self.cfg, self.ctx.recorder
        beta = self.ctx.cfg.env.beta
        lr = anneal_lr(self.optimizer, cfg.lr, cfg.anneal_lr, self.ctx.progress)
        # each prompt repeated group_size times, consecutively: the groups of group_advantages
        prompts = np.repeat(self.text.prompts(self.num_prompts), cfg.group_size, axis=0)
        batch = self.text.sample(self.net, prompts)
        self.text.finished(batch)
        advantages = group_advantages(batch.rewards, cfg.group_size, cfg.rloo)
        size, mb = len(prompts), min(cfg.batch_size, len(prompts))
        # one pass in one minibatch: the sampling policy is the one being updated, so its log
        # pi comes from the training forward itself (detached) and a whole forward is saved
        single_pass = cfg.n_epochs == 1 and mb == size
        with torch.no_grad():
            old_log_probs = (
                None if single_pass else self.text.score(self.net, batch, values=False)[0]
            )
            ref_log_probs = self.text.score_reference(batch)
        for _ in range(cfg.n_epochs):
            order = torch.randperm(size, device=advantages.device)
            for start in range(0, size - mb + 1, mb):
                idx = order[start : start + mb]
                log_probs, _, entropy = self.text.score(self.net, batch, idx, values=False)
                if old_log_probs is None:
                    old_log_probs = torch.empty_like(log_probs)
                    old_log_probs[idx] = log_probs.detach()
                loss, kl, clip_fraction = grpo_loss(
                    log_probs, old_log_probs[idx], ref_log_probs[idx], advantages[idx],
                    batch.mask[idx], cfg.clip_coef, beta,
                )  # fmt: skip
                self.optimizer.zero_grad()
                loss.backward()
                grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                self.optimizer.step()
                keep = batch.mask[idx] > 0
                record_losses(rec, loss.detach(), None, entropy[keep].mean().detach())
                rec.scalar(tags.APPROX_KL, kl)
                rec.scalar(tags.CLIP_FRACTION, clip_fraction)
                rec.scalar(tags.GRAD_NORM, grad_norm)
        assert old_log_probs is not None
        self.text.sampled_objective(batch, old_log_probs, ref_log_probs, beta)
        # GRPO's value estimate is its baseline: V = the group's mean reward, Q = R, A = Q - V
        baseline = batch.rewards.view(-1, cfg.group_size).mean(1).repeat_interleave(cfg.group_size)
        rec.scalar(tags.V_MEAN, baseline.mean())
        rec.scalar(tags.Q_MEAN, batch.rewards.mean())
        rec.scalar(tags.ADVANTAGE_MEAN, advantages.mean())
        rec.scalar(tags.ADVANTAGE_STD, advantages.std())
        rec.scalar(tags.LEARNING_RATE, lr)
        self._last = batch.rewards, baseline, advantages
        return int(batch.mask.sum().item())

    def pop_episodes(self) -> Episodes | None:
        return self.text.pop_episodes()

    def _shown_rows(self) -> list[TokenRow]:
        """A group of completions of each shown prompt, its first SHOWN_PER_GROUP kept; each token
        carries its completion's group advantage (GRPO has no V: the group mean is its baseline)."""
        cfg = self.cfg
        batch = self.text.shown_samples(self.net, per_prompt=cfg.group_size)
        advantages = group_advantages(batch.rewards, cfg.group_size, cfg.rloo)
        rows = self.text.rows(batch, None, advantages[:, None] * batch.mask)
        return [row for i, row in enumerate(rows) if i % cfg.group_size < SHOWN_PER_GROUP]

    def diagnostics(self) -> None:
        if self._last is not None:
            q, v, advantage = self._last
            record_histograms(self.ctx.recorder, q=q, v=v, advantage=advantage)
        self.text.record(self.ctx.recorder, self.net, value_head=False)
        if self.ctx.cfg.logger.images:  # the picture costs a sampling pass; skip it if unseen
            self.text.show(self.ctx.recorder, self._shown_rows())

    def terminal_view(self) -> str:
        title = "sample completions; each token carries its completion's group advantage A:"
        return f"{title}\n{token_table(self._shown_rows())}"

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            **self.text.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.text.load_state_dict(state)
