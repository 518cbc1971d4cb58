"""PPO with clipped objective and GAE (Schulman et al. 2017), for discrete and continuous actions,
and for a token policy on env=text (`TokenPPO`, at the end: the same losses over completions).

Read top to bottom: the loss terms (pure functions), then the algorithm: the rollout (T steps of
N envs with the current policy, `RolloutCollector`), then the update (epochs x minibatches of the
clipped surrogate, value and entropy terms). Hyperparameters: `PPOConfig`
(rltrain/config/algos.py). Implementation details follow "The 37 implementation details of PPO"
(Huang et al. 2022): orthogonal init, advantage normalisation per minibatch, global grad-norm
clipping, Adam eps 1e-5.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rltrain import tags
from rltrain.algos.actor_critic import (
    ActorCriticInference,
    Rollout,
    RolloutCollector,
    anneal_lr,
    check_actor_critic_env,
    record_histograms,
    record_losses,
    record_values,
    to_env_actions,
)
from rltrain.algos.base import Algorithm, Context, check_iteration_fits, obs_to_tensor
from rltrain.algos.token_rl import Completions, KLController, completion_run
from rltrain.blocks.optim import Adam
from rltrain.blocks.returns import gae
from rltrain.blocks.schedules import linear
from rltrain.blocks.stats import standardize
from rltrain.blocks.token_rewards import last_token, per_token_kl_reward
from rltrain.config.algos import PPOConfig, check_minibatch_fits
from rltrain.envs.render_tokens import TokenRow, token_table
from rltrain.envs.vec import Episodes
from rltrain.networks import build_actor_critic
from rltrain.networks.hand_backward import Evaluation, HeadGrad, HeadLoss, gradient_path


def clipped_surrogate_loss(
    ratio: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """L = -mean_i min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i)  (Schulman et al. 2017, eq. 7),

    r_i = pi(a_i|s_i) / pi_old(a_i|s_i). The mean is over the last axis: a population's [K, B]
    gives each seed's loss (here and in the other terms).
    """
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean(-1)


def clipped_surrogate_grad(
    ratio: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """dL/d log pi(a_i|s_i) of `clipped_surrogate_loss`, with dr/d log pi = r:

    -r_i A_i / B where the unclipped term is the minimum; 0 where the clipped one is strictly
    smaller (it is then constant in r). Where both are equal, r is inside the clip range.
    """
    unclipped = ratio * advantages
    chosen = unclipped <= ratio.clamp(1 - clip, 1 + clip) * advantages
    return torch.where(chosen, unclipped, 0.0).mul_(-1.0 / ratio.shape[-1])


def value_loss(
    values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """L = mean_i (V_i - R_i)^2; with clipping (PPO2 baselines), mean_i max((V_i - R_i)^2,
    (Vc_i - R_i)^2) where Vc_i = V_old_i + clip(V_i - V_old_i, -eps, eps)."""
    error = (values - returns).pow(2)
    if clip is None:
        return error.mean(-1)
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return torch.max(error, (clipped - returns).pow(2)).mean(-1)


def value_loss_grad(
    values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """dL/dV_i of `value_loss`: 2 (V_i - R_i) / B, and 0 where the clipped error is strictly
    larger (Vc is then clipped, constant in V)."""
    grad = (values - returns).mul_(2.0 / values.shape[-1])
    if clip is None:
        return grad
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return grad.mul_((values - returns).pow(2) >= (clipped - returns).pow(2))


class PPOLoss(NamedTuple):
    loss: HeadLoss
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def ppo_loss(
    out: Evaluation,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    clip: float,
    value_clip: float | None,
    vf_coef: float,
    ent_coef: float,
    closed_form: bool,
) -> PPOLoss:
    """L = clipped_surrogate_loss + vf_coef * value_loss - ent_coef * mean_i H_i, or with
    `closed_form` its gradient per row: dL/d log pi = clipped_surrogate_grad,
    dL/dV = vf_coef * value_loss_grad, dL/dH = -ent_coef / B. The parts, the k3 KL estimate and
    the clip fraction come back detached, for logging and early stopping.
    """
    log_ratio = out.log_probs - old_log_probs
    ratio = log_ratio.exp()
    policy_loss = clipped_surrogate_loss(ratio, advantages, clip)
    critic_loss = value_loss(out.values, returns, old_values, value_clip)
    entropy = out.entropy.mean(-1)
    if closed_form:
        loss = HeadLoss(None, HeadGrad(
            clipped_surrogate_grad(ratio, advantages, clip),
            -ent_coef / ratio.shape[-1],
            value_loss_grad(out.values, returns, old_values, value_clip).mul_(vf_coef),
        ))  # fmt: skip
    else:
        loss = HeadLoss(policy_loss + vf_coef * critic_loss - ent_coef * entropy)
        log_ratio, ratio = log_ratio.detach(), ratio.detach()
        policy_loss, critic_loss = policy_loss.detach(), critic_loss.detach()
        entropy = entropy.detach()
    return PPOLoss(
        loss, policy_loss, critic_loss, entropy, approx_kl(log_ratio, ratio),
        ((ratio - 1).abs() > clip).float().mean(-1),
    )  # fmt: skip


def approx_kl(log_ratio: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(old || new) (Schulman 2020): mean_i [(r_i - 1) - log r_i]."""
    return ((ratio - 1) - log_ratio).mean(-1)


class PPO(ActorCriticInference, Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_actor_critic_env("ppo", obs_space, action_space)

    def __init__(self, cfg: PPOConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env, device = ctx.env, ctx.device
        self.num_envs = env.num_envs
        rollout_size = cfg.n_steps * self.num_envs
        check_iteration_fits(ctx, "ppo", rollout_size, "algo.n_steps x env.num_envs")
        if ctx.run_dir is not None:  # training, not `eval`
            check_minibatch_fits(cfg.batch_size, cfg.n_steps, self.num_envs)
        self.net = build_actor_critic(
            env.single_observation_space, env.single_action_space, ctx.cfg.network
        ).to(device)
        self.optimizer = Adam(self.net.parameters(), lr=cfg.lr, eps=cfg.optimizer_eps)
        # autograd, or the same gradients by hand where the network allows (networks/hand_backward)
        self.gradients = gradient_path(self.net, self.optimizer, cfg.manual_backward)
        self.action_space = env.single_action_space
        self.collector = RolloutCollector(env, cfg.n_steps, device, env.reset(seed=ctx.cfg.seed))
        self._last: Rollout | None = None

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _, _ = self.net.act(obs_to_tensor(obs, self.ctx.device), deterministic)
        return to_env_actions(actions, self.action_space)

    def collect(self) -> Rollout:
        return self.collector.collect(self.net, self.cfg.gamma, self.cfg.gae_lambda)

    # --- update -----------------------------------------------------------------------------
    def update(self, rollout: Rollout) -> None:
        cfg, rec = self.cfg, self.ctx.recorder
        lr = anneal_lr(self.optimizer, cfg.lr, cfg.anneal_lr, self.ctx.progress)
        clip = linear(cfg.clip_coef, 0.0, self.ctx.progress) if cfg.anneal_clip else cfg.clip_coef
        clip = max(clip, 1e-8)

        obs = rollout.obs.flatten(0, 1)
        # Image rollouts on the CPU: minibatches come from an NHWC copy made once per rollout,
        # the layout NatureCNN convolves in there, and index_select copies whole rows (obs[idx]
        # copies uint8 frames byte by byte).
        channels_last = obs.dim() == 4 and obs.device.type == "cpu"
        if channels_last:
            obs = obs.permute(0, 2, 3, 1).contiguous()
        actions = rollout.actions.flatten(0, 1)
        old_log_probs = rollout.log_probs.flatten()
        old_values = rollout.values.flatten()
        advantages = rollout.advantages.flatten()
        returns = rollout.returns.flatten()
        size = obs.shape[0]
        batch = min(cfg.batch_size, size)
        normalize = cfg.normalize_advantages and batch > 1
        # A minibatch that is the whole rollout (RL Zoo CartPole: 256 of 256) is taken in order:
        # the loss is a mean, so shuffling changes nothing but the cost (a randperm and six
        # gathers per epoch), and its advantages are standardized once, not every epoch.
        whole = batch == size
        whole_advantages = standardize(advantages) if whole and normalize else advantages
        value_clip = clip if cfg.clip_value_loss else None

        stop = False
        for _ in range(cfg.n_epochs):
            order = None if whole else torch.randperm(size, device=obs.device)
            for start in range(0, size - batch + 1, batch):
                if order is None:
                    idx: slice | torch.Tensor = slice(None)
                    mb_obs = obs
                else:
                    idx = order[start : start + batch]
                    mb_obs = obs.index_select(0, idx)
                if channels_last:
                    mb_obs = mb_obs.permute(0, 3, 1, 2)  # an NCHW view of NHWC memory
                if whole:
                    adv = whole_advantages
                else:
                    adv = standardize(advantages[idx]) if normalize else advantages[idx]

                out = self.gradients.evaluate(mb_obs, actions[idx])
                terms = ppo_loss(
                    out, old_log_probs[idx], adv, returns[idx], old_values[idx], clip,
                    value_clip, cfg.vf_coef, cfg.ent_coef, closed_form=self.gradients.hand,
                )  # fmt: skip
                if cfg.target_kl is not None and terms.approx_kl.item() > 1.5 * cfg.target_kl:
                    stop = True
                    break
                self.gradients.backward(out, terms.loss)
                grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                self.optimizer.step()

                record_losses(rec, terms.policy_loss, terms.value_loss, terms.entropy)
                rec.scalar(tags.APPROX_KL, terms.approx_kl)
                rec.scalar(tags.CLIP_FRACTION, terms.clip_fraction)
                rec.scalar(tags.GRAD_NORM, grad_norm)
            if stop:
                break

        rec.scalar(tags.LEARNING_RATE, lr)
        record_values(rec, old_values, advantages, returns)
        self._last = rollout

    def iterate(self) -> int:
        self.update(self.collect())
        return self.cfg.n_steps * self.num_envs

    def diagnostics(self) -> None:
        if self._last is not None:
            last = self._last
            record_histograms(self.ctx.recorder, last.values, last.advantages, last.returns)

    # --- checkpoint -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs": torch.from_numpy(np.ascontiguousarray(self.collector.obs)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.collector.obs = state["obs"].numpy()


# --- PPO on the token MDP (env=text) ---
class TokenPPO(Algorithm):
    """The same PPO on completions: the policy is the transformer's language-model head, V its
    value head per token. A rollout is env.num_envs completions; each token's reward is the
    per-token KL penalty, plus R(x, y) at the last token (`per_token_kl_reward`); advantages are
    GAE over each completion (it terminates at its last token); then the clipped surrogate,
    value and entropy terms over epochs x minibatches of completions (`algo.batch_size`).
    The KL coefficient starts at env.beta and adapts with `algo.adaptive_kl_target`."""

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        pass  # the registry picks TokenPPO on env=text only

    def __init__(self, cfg: PPOConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.text = completion_run(ctx)
        self.net = self.text.new_policy()
        trainable = [p for p in self.net.parameters() if p.requires_grad]  # LoRA: adapters
        self.optimizer = Adam(trainable, lr=cfg.lr, eps=cfg.optimizer_eps)
        self.kl = KLController(ctx.cfg.env.beta, cfg.adaptive_kl_target, cfg.adaptive_kl_horizon)
        self.num_envs = ctx.env.num_envs
        tokens = self.num_envs * self.text.task.max_new_tokens
        check_iteration_fits(ctx, "ppo", tokens, "env.num_envs x env.max_new_tokens")
        # V, A and Q = A + V of the latest iteration's tokens, for the histograms
        self._last: tuple[Tensor, Tensor, Tensor] | None = None

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        return self.text.act(self.net, obs, deterministic)

    def iterate(self) -> int:
        cfg, rec = self.cfg, self.ctx.recorder
        lr = anneal_lr(self.optimizer, cfg.lr, cfg.anneal_lr, self.ctx.progress)
        batch = self.text.sample(self.net, self.text.prompts(self.num_envs))
        self.text.finished(batch)
        mask = batch.mask
        old_log_probs, ref_log_probs, old_values, advantages, returns = self._estimate(batch)
        self.text.sampled_objective(batch, old_log_probs, ref_log_probs, self.kl.beta)
        size, mb = len(mask), min(cfg.batch_size, len(mask))
        value_clip = cfg.clip_coef if cfg.clip_value_loss else None
        stop = False
        for _ in range(cfg.n_epochs):
            order = torch.randperm(size, device=mask.device)
            for start in range(0, size - mb + 1, mb):
                idx = order[start : start + mb]
                keep = mask[idx] > 0
                log_probs, values, entropy = self.text.score(self.net, batch, idx)
                adv = advantages[idx][keep]
                if cfg.normalize_advantages and adv.numel() > 1:
                    adv = standardize(adv)
                log_ratio = log_probs[keep] - old_log_probs[idx][keep]
                ratio = log_ratio.exp()
                policy_loss = clipped_surrogate_loss(ratio, adv, cfg.clip_coef)
                critic_loss = value_loss(
                    values[keep], returns[idx][keep], old_values[idx][keep], value_clip
                )
                entropy_mean = entropy[keep].mean()
                kl = approx_kl(log_ratio.detach(), ratio.detach())
                if cfg.target_kl is not None and kl.item() > 1.5 * cfg.target_kl:
                    stop = True
                    break
                loss = policy_loss + cfg.vf_coef * critic_loss - cfg.ent_coef * entropy_mean
                self.optimizer.zero_grad()
                loss.backward()
                grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                self.optimizer.step()
                record_losses(
                    rec, policy_loss.detach(), critic_loss.detach(), entropy_mean.detach()
                )
                rec.scalar(tags.APPROX_KL, kl)
                clipped = (ratio.detach() - 1).abs() > cfg.clip_coef
                rec.scalar(tags.CLIP_FRACTION, clipped.float().mean())
                rec.scalar(tags.GRAD_NORM, grad_norm)
            if stop:
                break
        # the KL of a whole completion to the reference, as the controller measures it
        sequence_kl = float(((old_log_probs - ref_log_probs) * mask).sum(1).mean())
        self.kl.update(sequence_kl, size)
        rec.scalar(tags.KL_COEF, self.kl.beta)
        rec.scalar(tags.LEARNING_RATE, lr)
        keep_all = mask > 0
        self._last = old_values[keep_all], advantages[keep_all], returns[keep_all]
        record_values(rec, *self._last)
        return int(mask.sum().item())

    @torch.no_grad()
    def _estimate(self, batch: Completions) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(log pi, log pi_ref, V, GAE advantages, returns) per token of the completions, [B, L]."""
        cfg, mask = self.cfg, batch.mask
        old_log_probs, old_values, _ = self.text.score(self.net, batch)
        ref_log_probs = self.text.score_reference(batch)
        rewards = per_token_kl_reward(
            old_log_probs, ref_log_probs, batch.rewards, mask, self.kl.beta
        )
        ends = last_token(mask)
        next_values = torch.cat([old_values[:, 1:], torch.zeros_like(old_values[:, :1])], 1)
        # time-major for gae; padding after the last token is cut off by its termination
        advantages, returns = (x.T for x in gae(
            rewards.T, (old_values * mask).T, (next_values * mask).T, ends.T,
            torch.zeros_like(ends).T, cfg.gamma, cfg.gae_lambda,
        ))  # fmt: skip
        return old_log_probs, ref_log_probs, old_values, advantages, returns

    def _shown_rows(self) -> list[TokenRow]:
        """Two completions of each shown prompt with the V and GAE advantage of every token."""
        batch = self.text.shown_samples(self.net, per_prompt=2)
        _, _, values, advantages, _ = self._estimate(batch)
        return self.text.rows(batch, values, advantages)

    def pop_episodes(self) -> Episodes | None:
        return self.text.pop_episodes()

    def diagnostics(self) -> None:
        if self._last is not None:
            record_histograms(self.ctx.recorder, *self._last)
        self.text.record(self.ctx.recorder, self.net)
        if self.ctx.cfg.logger.images:  # the picture costs a sampling pass; skip it if unseen
            self.text.show(self.ctx.recorder, self._shown_rows())

    def terminal_view(self) -> str:
        title = "sample completions; each token with the value head's V and its GAE advantage A:"
        return f"{title}\n{token_table(self._shown_rows())}"

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "kl": self.kl.state_dict(), **self.text.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl.load_state_dict(state["kl"])
        self.text.load_state_dict(state)
