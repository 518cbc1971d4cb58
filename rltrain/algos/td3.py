"""TD3 (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods",
arXiv:1802.09477) and DDPG (Lillicrap et al. 2016), one file for both: DDPG is TD3 with its three
tricks turned off (`algo=ddpg` sets them so; rltrain/config/algos.py).

- clipped double-Q (`algo.clipped_double_q`): two critics, the target takes the smaller of the
  two target critics, y = r + gamma min(Q1', Q2')(s', a'). Off: one critic,
  y = r + gamma Q'(s', a').
- target policy smoothing (`algo.target_policy_noise`, `algo.target_noise_clip`):
  a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma^2). 0: a' = mu'(s').
- delayed policy updates (`algo.policy_delay`): the actor and the targets move once every d
  critic updates. 1: after every one.

Read top to bottom: the pure math (the targets, the smoothing), then the algorithm: `iterate()`
acts `train_freq` steps in every env (uniform random actions until `learning_starts`, then
mu(s) + N(0, exploration_noise^2), clipped to the box), stores them, then runs
`gradient_steps` updates.

Value estimates: values/q_mean = Q1(s, a) of the replayed actions, values/v_mean = Q1(s, mu(s))
and A = Q - V (on the actor's steps), values/q_disagreement = mean |Q1 - Q2| (twin critics only),
and values/q_bias: Q1(s_t, a_t) when acting minus the discounted return that followed
(`QBiasTracker`, as DQN's), the overestimation TD3 was made to reduce (its figure 1).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.algos.base import Algorithm, Context, obs_to_tensor
from rltrain.algos.off_policy import Experience, check_continuous_env, update_target
from rltrain.algos.value_estimates import record_histograms
from rltrain.blocks.buffers import ReplaySample
from rltrain.blocks.optim import Adam
from rltrain.config.algos import TD3Config
from rltrain.networks.continuous import Critics, DeterministicActor


# --- pure math ----------------------------------------------------------------------------------
def smoothed_target_action(
    next_action: torch.Tensor, noise: torch.Tensor, noise_std: float, noise_clip: float
) -> torch.Tensor:
    """a' = clip(mu'(s') + clip(sigma * eps, -c, c), -1, 1), eps ~ N(0, I) given as `noise`
    (Fujimoto et al. 2018, eq. 14): the target values a small neighbourhood of mu'(s')."""
    smoothing = (noise * noise_std).clamp(-noise_clip, noise_clip)
    return (next_action + smoothing).clamp(-1.0, 1.0)


def clipped_double_q_target(
    rewards: torch.Tensor, discounts: torch.Tensor, next_q: torch.Tensor
) -> torch.Tensor:
    """y = r + D * min_i Q'_i(s', a') over the target critics next_q [n, B] (eq. 10); with one
    critic (n = 1, DDPG) the plain y = r + D * Q'(s', a'). D = gamma (1 - terminated)."""
    return rewards + discounts * next_q.min(dim=0).values


# --- the algorithm ------------------------------------------------------------------------------
class TD3(Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_continuous_env("td3", obs_space, action_space)

    def __init__(self, cfg: TD3Config, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.experience = Experience(cfg.name, ctx, cfg)
        obs_dim, act_dim = self.experience.obs_dim, self.experience.act_dim
        net = ctx.cfg.network
        self.actor = DeterministicActor(obs_dim, act_dim, net).to(ctx.device)
        self.critics = Critics(obs_dim, act_dim, 2 if cfg.clipped_double_q else 1, net).to(
            ctx.device
        )
        # target copies before the optimizers rebind the weights to their flat buffers
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_optimizer = Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optimizer = Adam(self.critics.parameters(), lr=cfg.lr)
        self.updates = 0
        # Q, V and A of the latest actor step, for the histograms
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # --- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _explore(self, obs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """mu(s) + N(0, sigma^2) clipped to the unit box, and Q1(s, a) of it (for q_bias)."""
        mu = self.actor(obs).cpu().numpy()
        noise = self.ctx.rng.normal(0.0, self.cfg.exploration_noise, mu.shape)
        actions = np.clip(mu + noise, -1.0, 1.0).astype(np.float32)
        q = self.critics(obs, torch.from_numpy(actions).to(obs.device))[0]
        return actions, q.cpu().numpy()

    @torch.no_grad()
    def _final_value(self, final_obs: np.ndarray) -> np.ndarray:
        """Q1(s_T, mu(s_T)): the tail of an episode cut by a time limit, for q_bias."""
        obs = obs_to_tensor(final_obs, self.ctx.device)
        return self.critics(obs, self.actor(obs))[0].cpu().numpy()  # type: ignore[no-any-return]

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        tensor = obs_to_tensor(obs, self.ctx.device)
        if deterministic:
            unit = self.actor(tensor).cpu().numpy()
        else:
            unit, _ = self._explore(tensor)
        return self.experience.scale.to_env(unit)

    # --- learning -------------------------------------------------------------------------------
    @torch.no_grad()
    def targets(self, batch: ReplaySample) -> torch.Tensor:
        cfg = self.cfg
        next_action = self.target_actor(batch.next_obs)
        if cfg.target_policy_noise > 0:
            next_action = smoothed_target_action(
                next_action, torch.randn_like(next_action), cfg.target_policy_noise,
                cfg.target_noise_clip,
            )  # fmt: skip
        next_q = self.target_critics(batch.next_obs, next_action)
        return clipped_double_q_target(batch.rewards, batch.discounts, next_q)

    def update(self, batch: ReplaySample) -> None:
        """One critic step on `batch`; every policy_delay-th step also the actor and targets."""
        cfg, rec = self.cfg, self.ctx.recorder
        target = self.targets(batch)
        q = self.critics(batch.obs, batch.actions)  # [n, B]
        # sum over the critics of their mean squared errors (each critic its own regression)
        loss_q = (q - target).pow(2).mean(dim=1).sum()
        self.critic_optimizer.zero_grad()
        loss_q.backward()
        rec.scalar(tags.GRAD_NORM, self.critic_optimizer.grad_norm())
        self.critic_optimizer.step()
        self.updates += 1

        q = q.detach()
        rec.scalar(tags.TD_LOSS, loss_q.detach())
        rec.scalar(tags.TD_ERROR, (q[0] - target).abs().mean())
        rec.scalar(tags.Q_MEAN, q[0].mean())
        rec.scalar(tags.Q_MAX, q[0].max())
        if q.shape[0] > 1:
            rec.scalar(tags.Q_DISAGREEMENT, (q[0] - q[1]).abs().mean())

        if self.updates % cfg.policy_delay == 0:
            # deterministic policy gradient: ascend Q1(s, mu(s)), the critics held fixed
            self.critics.requires_grad_(False)
            v = self.critics(batch.obs, self.actor(batch.obs))[0]
            self.critics.requires_grad_(True)
            loss_pi = -v.mean()
            self.actor_optimizer.zero_grad()
            loss_pi.backward()
            rec.scalar(tags.ACTOR_GRAD_NORM, self.actor_optimizer.grad_norm())
            self.actor_optimizer.step()
            update_target(self.target_critics, self.critics, cfg.tau)
            update_target(self.target_actor, self.actor, cfg.tau)
            advantage = q[0] - v.detach()
            rec.scalar(tags.POLICY_LOSS, loss_pi.detach())
            rec.scalar(tags.V_MEAN, v.detach().mean())
            rec.scalar(tags.ADVANTAGE_MEAN, advantage.mean())
            rec.scalar(tags.ADVANTAGE_STD, advantage.std())
            self._last = q[0], v.detach(), advantage

    def iterate(self) -> int:
        cfg, ctx, exp = self.cfg, self.ctx, self.experience
        remaining = math.ceil((ctx.cfg.total_steps - ctx.step) / exp.num_envs)
        vector_steps = max(1, min(cfg.train_freq, remaining))
        for t in range(vector_steps):
            if ctx.step + t * exp.num_envs < cfg.learning_starts:
                # no prediction in the warm-up: those steps carry no q_bias
                exp.step(exp.random_actions(), None, self._final_value)
            else:
                actions, q_taken = self._explore(obs_to_tensor(exp.obs, ctx.device))
                exp.step(actions, q_taken, self._final_value)
        consumed = vector_steps * exp.num_envs
        if ctx.step + consumed > exp.learning_starts_at:
            for _ in range(cfg.gradient_steps):
                self.update(exp.buffer.sample(cfg.batch_size, ctx.rng))
        return consumed

    def diagnostics(self) -> None:
        q_bias = self.experience.q_bias.pop()
        if q_bias is not None:
            self.ctx.recorder.scalar(tags.Q_BIAS, q_bias)
        if self._last is not None:
            q, v, advantage = self._last
            record_histograms(self.ctx.recorder, q=q, v=v, advantage=advantage)

    # --- checkpoint -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critics": self.critics.state_dict(),
            "target_actor": self.target_actor.state_dict(),
            "target_critics": self.target_critics.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "updates": self.updates,
            "experience": self.experience.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.target_actor.load_state_dict(state["target_actor"])
        self.target_critics.load_state_dict(state["target_critics"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.updates = int(state["updates"])
        self.experience.load_state_dict(state["experience"])


class DDPG(TD3):
    """algo=ddpg: TD3's code with clipped_double_q, policy_delay and smoothing off (DDPGConfig)."""

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_continuous_env("ddpg", obs_space, action_space)
