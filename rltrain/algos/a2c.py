"""A2C: synchronous n-step advantage actor-critic (Mnih et al. 2016, the synchronous variant).

Read top to bottom: the rollout (n_steps of N vectorized envs with the current policy, advantages
by GAE(lambda); lambda = 1 gives the n-step returns of the paper), then the loss (policy gradient
with the advantage, value regression, entropy bonus; `actor_critic_loss`) and one optimizer step
per rollout. Hyperparameters: `A2CConfig` (rltrain/config/algos.py); its defaults are
Stable-Baselines3's A2C: RMSprop(alpha 0.99, eps 1e-5), lr 7e-4, n_steps 5, vf_coef 0.5,
max_grad_norm 0.5, no advantage normalisation. The rollout, the loss and the logging are shared
with A3C in rltrain/algos/actor_critic.py.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.algos.actor_critic import (
    ActorCriticInference,
    RewardScaler,
    Rollout,
    RolloutCollector,
    actor_critic_loss,
    anneal_lr,
    check_actor_critic_env,
    flat_batch,
    make_optimizer,
    record_histograms,
    record_losses,
    record_values,
    to_env_actions,
)
from rltrain.algos.base import Algorithm, Context, check_iteration_fits, obs_to_tensor
from rltrain.config.algos import A2CConfig
from rltrain.networks import build_actor_critic
from rltrain.networks.hand_backward import gradient_path


class A2C(ActorCriticInference, Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_actor_critic_env("a2c", obs_space, action_space)

    def __init__(self, cfg: A2CConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env = ctx.env
        check_iteration_fits(ctx, "a2c", cfg.n_steps * env.num_envs, "algo.n_steps x env.num_envs")
        self.net = build_actor_critic(
            env.single_observation_space, env.single_action_space, ctx.cfg.network
        ).to(ctx.device)
        self.optimizer = make_optimizer(
            self.net.parameters(), cfg.optimizer, cfg.lr, cfg.rms_alpha, cfg.optimizer_eps
        )
        # autograd, or the same gradients by hand where the network allows (networks/hand_backward)
        self.gradients = gradient_path(self.net, self.optimizer, cfg.manual_backward)
        self.action_space = env.single_action_space
        scaler = RewardScaler(env.num_envs, cfg.gamma) if cfg.normalize_rewards else None
        self.collector = RolloutCollector(
            env, cfg.n_steps, ctx.device, env.reset(seed=ctx.cfg.seed), scaler
        )
        self._last: Rollout | None = None

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _, _ = self.net.act(obs_to_tensor(obs, self.ctx.device), deterministic)
        return to_env_actions(actions, self.action_space)

    def iterate(self) -> int:
        cfg, rec = self.cfg, self.ctx.recorder
        rollout = self.collector.collect(self.net, cfg.gamma, cfg.gae_lambda)
        lr = anneal_lr(self.optimizer, cfg.lr, cfg.anneal_lr, self.ctx.progress)

        obs, actions, advantages, returns = flat_batch(rollout, cfg.normalize_advantages)
        out = self.gradients.evaluate(obs, actions)
        loss, stats = actor_critic_loss(
            out, advantages, returns, cfg.vf_coef, cfg.ent_coef, closed_form=self.gradients.hand
        )
        self.gradients.backward(out, loss)
        grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
        self.optimizer.step()

        rec.scalar(tags.LEARNING_RATE, lr)
        rec.scalar(tags.GRAD_NORM, grad_norm)
        record_losses(rec, *stats)
        record_values(rec, rollout.values, rollout.advantages, rollout.returns)
        self._last = rollout
        return cfg.n_steps * self.ctx.env.num_envs

    def diagnostics(self) -> None:
        if self._last is not None:
            last = self._last
            record_histograms(self.ctx.recorder, last.values, last.advantages, last.returns)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs": torch.from_numpy(np.ascontiguousarray(self.collector.obs)),
        }
        if self.collector.reward_scaler is not None:
            state["reward_scaler"] = self.collector.reward_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.collector.obs = state["obs"].numpy()  # the observation the saved run acts on next
        if self.collector.reward_scaler is not None and "reward_scaler" in state:
            self.collector.reward_scaler.load_state_dict(state["reward_scaler"])
