"""Soft actor-critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications",
arXiv:1812.05905): twin critics with Polyak-averaged targets, a tanh-squashed Gaussian actor and
an entropy coefficient alpha learned toward a target entropy (-|A| by default).

Read top to bottom: the pure math (squashed sampling, the soft target, the three losses), then the
algorithm: `iterate()` acts `train_freq` steps in every env (uniform random actions until
`learning_starts`, then samples of the policy), stores them in replay, then runs
`gradient_steps` updates, each: critics, actor, alpha, targets (in this order, as the paper's
algorithm 1).

Value estimates (the soft ones, in the units of the maximum-entropy objective), on the replayed
states of each update: values/q_mean = min_i Q_i(s, a) of the replayed actions; values/v_mean =
V(s) = E_{a~pi}[min_i Q_i(s, a) - alpha log pi(a|s)], estimated with the action the actor
update samples; A = Q - V. charts/ent_coef is alpha, policy/entropy = -E[log pi(a|s)] (a one-sample
estimate: the squashed Gaussian has no closed-form entropy).
"""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.algos.base import Algorithm, Context, obs_to_tensor
from rltrain.algos.off_policy import Experience, check_continuous_env, update_target
from rltrain.algos.value_estimates import record_histograms
from rltrain.blocks.buffers import ReplaySample
from rltrain.blocks.optim import Adam
from rltrain.config.algos import SACConfig
from rltrain.networks.continuous import Critics, GaussianActor
from rltrain.networks.distributions import squashed_gaussian_log_prob


# --- pure math ----------------------------------------------------------------------------------
def squashed_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised a = tanh(u), u = mean + std * noise (noise ~ N(0, I)), and log pi(a|s)
    = log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2). Gradients flow through mean and std."""
    u = mean + log_std.exp() * noise
    return torch.tanh(u), squashed_gaussian_log_prob(mean, log_std, u)


def soft_q_target(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    next_q: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: torch.Tensor | float,
) -> torch.Tensor:
    """y = r + D * (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s'), next_q [n, B]
    from the target critics. D = gamma (1 - terminated): a time-limit cut still bootstraps."""
    return rewards + discounts * (next_q.min(dim=0).values - alpha * next_log_prob)


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_Q = sum_i mean_b (Q_i(s_b, a_b) - y_b)^2 / 2 (eq. 5, one term per critic)."""
    return 0.5 * (q - target).pow(2).mean(dim=1).sum()


def actor_loss(q_new: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """L_pi = mean_b [alpha log pi(a_b|s_b) - min_i Q_i(s_b, a_b)], a_b ~ pi(.|s_b) (eq. 7)."""
    return (alpha * log_prob - q_new.min(dim=0).values).mean()


def ent_coef_loss(
    log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """L(alpha) = -mean_b log(alpha) (log pi(a_b|s_b) + H_target) (eq. 18, on log alpha as SB3
    does, so alpha stays positive): alpha grows while the entropy -log pi is below the target."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


# --- the algorithm ------------------------------------------------------------------------------
class UpdateStats(NamedTuple):
    critic_loss: torch.Tensor
    actor_loss: torch.Tensor
    q: torch.Tensor  # [B] min_i Q_i(s, a) of the replayed actions
    v: torch.Tensor  # [B] min_i Q_i(s, a~pi) - alpha log pi(a~|s)
    log_prob: torch.Tensor  # [B]


class SAC(Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_continuous_env("sac", obs_space, action_space)

    def __init__(self, cfg: SACConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.experience = Experience("sac", ctx, cfg)
        obs_dim, act_dim = self.experience.obs_dim, self.experience.act_dim
        net = ctx.cfg.network
        self.actor = GaussianActor(obs_dim, act_dim, net).to(ctx.device)
        self.critics = Critics(obs_dim, act_dim, 2, net).to(ctx.device)
        # the target copy is made before the optimizers rebind the weights to their flat buffers
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_optimizer = Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optimizer = Adam(self.critics.parameters(), lr=cfg.lr)
        # alpha = exp(log_alpha): learned with ent_coef=auto, else the fixed number
        fixed = cfg.fixed_ent_coef
        self.learn_alpha = fixed is None
        initial = cfg.ent_coef_init if fixed is None else max(fixed, 1e-30)
        self.log_alpha = torch.tensor(
            [math.log(initial)], device=ctx.device, requires_grad=self.learn_alpha
        )
        self.alpha_optimizer = Adam([self.log_alpha], lr=cfg.lr) if self.learn_alpha else None
        self.fixed_alpha = fixed
        self.target_entropy = (
            -float(act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        )
        self.updates = 0
        self._last: UpdateStats | None = None

    def alpha(self) -> torch.Tensor:
        if self.fixed_alpha is not None:
            return torch.tensor(self.fixed_alpha, device=self.ctx.device)
        return self.log_alpha.detach().exp().squeeze(0)

    # --- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _policy(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """Unit-box actions: tanh(mean) when deterministic, else a sample of pi(.|s)."""
        mean, log_std = self.actor(obs_to_tensor(obs, self.ctx.device))
        if deterministic:
            return torch.tanh(mean).cpu().numpy()  # type: ignore[no-any-return]
        action, _ = squashed_sample(mean, log_std, torch.randn_like(mean))
        return action.cpu().numpy()  # type: ignore[no-any-return]

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        return self.experience.scale.to_env(self._policy(obs, deterministic))

    # --- learning -------------------------------------------------------------------------------
    def update(self, batch: ReplaySample) -> UpdateStats:
        """One gradient step of the critics, the actor and alpha on `batch`, then the targets."""
        cfg = self.cfg
        alpha = self.alpha()
        # critics: regress both on the soft target of the target critics
        with torch.no_grad():
            next_mean, next_log_std = self.actor(batch.next_obs)
            next_action, next_log_prob = squashed_sample(
                next_mean, next_log_std, torch.randn_like(next_mean)
            )
            target = soft_q_target(
                batch.rewards, batch.discounts, self.target_critics(batch.next_obs, next_action),
                next_log_prob, alpha,
            )  # fmt: skip
        q = self.critics(batch.obs, batch.actions)
        loss_q = critic_loss(q, target)
        self.critic_optimizer.zero_grad()
        loss_q.backward()
        self.ctx.recorder.scalar(tags.GRAD_NORM, self.critic_optimizer.grad_norm())
        self.critic_optimizer.step()

        # actor: maximise E[min Q - alpha log pi] through the reparameterised sample; the critics
        # are held fixed (no weight gradients for them: they would be zeroed anyway)
        mean, log_std = self.actor(batch.obs)
        action, log_prob = squashed_sample(mean, log_std, torch.randn_like(mean))
        self.critics.requires_grad_(False)
        q_new = self.critics(batch.obs, action)
        self.critics.requires_grad_(True)
        loss_pi = actor_loss(q_new, log_prob, alpha)
        self.actor_optimizer.zero_grad()
        loss_pi.backward()
        self.ctx.recorder.scalar(tags.ACTOR_GRAD_NORM, self.actor_optimizer.grad_norm())
        self.actor_optimizer.step()

        # alpha: toward the target entropy (ent_coef=auto)
        if self.alpha_optimizer is not None:
            loss_alpha = ent_coef_loss(self.log_alpha, log_prob, self.target_entropy)
            self.alpha_optimizer.zero_grad()
            loss_alpha.backward()
            self.alpha_optimizer.step()
            self.ctx.recorder.scalar(tags.ENT_COEF_LOSS, loss_alpha.detach())

        update_target(self.target_critics, self.critics, cfg.tau)
        self.updates += 1
        with torch.no_grad():
            q_min = q.detach().min(dim=0).values
            v = q_new.detach().min(dim=0).values - alpha * log_prob.detach()
        stats = UpdateStats(loss_q.detach(), loss_pi.detach(), q_min, v, log_prob.detach())
        self._record(stats, (q.detach() - target).abs().mean(), alpha)
        return stats

    def _record(self, stats: UpdateStats, td_error: torch.Tensor, alpha: torch.Tensor) -> None:
        rec = self.ctx.recorder
        advantage = stats.q - stats.v
        rec.scalar(tags.TD_LOSS, stats.critic_loss)
        rec.scalar(tags.POLICY_LOSS, stats.actor_loss)
        rec.scalar(tags.TD_ERROR, td_error)
        rec.scalar(tags.Q_MEAN, stats.q.mean())
        rec.scalar(tags.Q_MAX, stats.q.max())
        rec.scalar(tags.V_MEAN, stats.v.mean())
        rec.scalar(tags.ADVANTAGE_MEAN, advantage.mean())
        rec.scalar(tags.ADVANTAGE_STD, advantage.std())
        rec.scalar(tags.ENT_COEF, alpha)
        rec.scalar(tags.ENTROPY, -stats.log_prob.mean())
        self._last = stats

    def iterate(self) -> int:
        cfg, ctx, exp = self.cfg, self.ctx, self.experience
        remaining = math.ceil((ctx.cfg.total_steps - ctx.step) / exp.num_envs)
        vector_steps = max(1, min(cfg.train_freq, remaining))
        for t in range(vector_steps):
            if ctx.step + t * exp.num_envs < cfg.learning_starts:
                exp.step(exp.random_actions())
            else:
                exp.step(self._policy(exp.obs, deterministic=False))
        consumed = vector_steps * exp.num_envs
        if ctx.step + consumed > exp.learning_starts_at:
            for _ in range(cfg.gradient_steps):
                self.update(exp.buffer.sample(cfg.batch_size, ctx.rng))
        return consumed

    def diagnostics(self) -> None:
        if self._last is not None:
            q, v = self._last.q, self._last.v
            record_histograms(self.ctx.recorder, q=q, v=v, advantage=q - v)

    # --- checkpoint -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "actor": self.actor.state_dict(),
            "critics": self.critics.state_dict(),
            "target_critics": self.target_critics.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "updates": self.updates,
            "experience": self.experience.state_dict(),
        }
        if self.alpha_optimizer is not None:
            state["alpha_optimizer"] = self.alpha_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.target_critics.load_state_dict(state["target_critics"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        if self.alpha_optimizer is not None:
            self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.updates = int(state["updates"])
        self.experience.load_state_dict(state["experience"])
