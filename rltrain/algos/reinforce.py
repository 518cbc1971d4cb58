"""REINFORCE: Monte-Carlo policy gradient with an optional learned baseline (Williams 1992).

Read top to bottom: the config, then the collection of whole episodes (every vector env plays
its next `episodes_per_update / num_envs` episodes from a fresh reset with the current policy),
then the update

    grad J ~ mean_t [ grad log pi(a_t|s_t) * (G_t - b(s_t)) ],    G_t = sum_k gamma^k r_{t+k}

with b = V(s) regressed on the same returns (Sutton & Barto 2018, sec. 13.4), and the gradient
variance diagnostic that shows what the baseline buys.

Episodes, not fixed-length rollouts: each env contributes exactly its first m episodes after the
reset. Taking "the first K episodes to finish" across envs instead would over-sample short
episodes (they finish first) and bias the gradient. Steps an env takes after its m-th episode,
while the slower envs finish, are discarded (and counted: they were simulated).

A time-limit truncation bootstraps from V(final_obs) when the baseline exists (Pardo et al.
2018); without a critic the return simply ends at the cut.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltrain import tags
from rltrain.algos import value_estimates
from rltrain.algos.actor_critic import (
    ActorCriticInference,
    TruncationBootstrap,
    anneal_lr,
    check_actor_critic_env,
    record_losses,
    record_values,
    to_env_actions,
)
from rltrain.algos.base import Algorithm, Context, check_iteration_fits, obs_to_tensor
from rltrain.blocks.optim import Adam
from rltrain.blocks.returns import discounted_returns
from rltrain.blocks.stats import standardize
from rltrain.config.algos import ReinforceConfig
from rltrain.errors import UserError
from rltrain.networks import ActorCritic, build_actor_critic


class EpisodeBatch(NamedTuple):
    """The recorded steps of whole episodes, flattened to [B] (B = steps in the batch)."""

    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor  # G_t, reward-to-go inside its episode
    episode: torch.Tensor  # [B] long: which of the K episodes the step belongs to
    num_episodes: int
    episode_returns: np.ndarray  # [K] undiscounted return of each episode (for the charts)
    episode_lengths: np.ndarray  # [K]


def per_episode_gradient_variance(
    log_probs: torch.Tensor,
    weights: torch.Tensor,
    episode: torch.Tensor,
    num_episodes: int,
    params: list[nn.Parameter],
) -> torch.Tensor:
    """Total variance of the per-episode policy-gradient estimate over a batch of K episodes.

    For episode i:  g_i = sum_{t in i} weights_t * grad log pi(a_t|s_t)   (a vector over all
    policy parameters), and the result is the trace of their sample covariance

        tr Cov(g) = 1 / (K - 1) * sum_i || g_i - mean_j g_j ||^2 .

    `weights` is [W, B] for W weightings of the same steps (e.g. G - V and G), and the result is
    [W]: all K x W vector-Jacobian products come from one batched backward pass.
    """
    onehot = torch.nn.functional.one_hot(episode, num_episodes).to(log_probs.dtype)  # [B, K]
    grad_outputs = (weights.unsqueeze(1) * onehot.t().unsqueeze(0)).flatten(0, 1)  # [W*K, B]
    grads = torch.autograd.grad(
        log_probs, params, grad_outputs=grad_outputs, is_grads_batched=True,
        retain_graph=True, allow_unused=True,
    )
    flat = torch.cat([g.flatten(1) for g in grads if g is not None], dim=1)  # [W*K, P]
    flat = flat.view(weights.shape[0], num_episodes, -1)
    centred = flat - flat.mean(dim=1, keepdim=True)
    return centred.pow(2).sum(dim=(1, 2)) / max(1, num_episodes - 1)


class Reinforce(ActorCriticInference, Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_actor_critic_env("reinforce", obs_space, action_space)

    def __init__(self, cfg: ReinforceConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env = ctx.env
        if cfg.episodes_per_update % env.num_envs:
            raise UserError(
                f"algo.episodes_per_update={cfg.episodes_per_update} must be a multiple of "
                f"env.num_envs={env.num_envs} (every env plays the same number of episodes)"
            )
        check_iteration_fits(ctx, "reinforce", env.num_envs, "env.num_envs")
        self.episodes_per_env = cfg.episodes_per_update // env.num_envs
        self.net: ActorCritic = build_actor_critic(
            env.single_observation_space, env.single_action_space, ctx.cfg.network
        ).to(ctx.device)
        self.optimizer = Adam(self.net.parameters(), lr=cfg.lr, eps=cfg.optimizer_eps)
        self.action_space = env.single_action_space
        self.has_value = cfg.baseline
        self._seed: int | None = ctx.cfg.seed  # the first reset is seeded, later ones continue
        # V, A (None without a baseline) and Q = G of the latest update, for the histograms
        self._last: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor] | None = None
        # without a baseline there is no V, so no A either: Q (the return) is all it estimates
        self.value_tags = tags.VALUE_MEAN_TAGS if cfg.baseline else (tags.Q_MEAN,)
        self._episodes: list[tuple[np.ndarray, np.ndarray]] = []

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _, _ = self.net.act(obs_to_tensor(obs, self.ctx.device), deterministic)
        return to_env_actions(actions, self.action_space)

    # --- collection ---------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> tuple[EpisodeBatch, int]:
        """Each env plays its next `episodes_per_env` whole episodes; returns them and the number
        of env steps simulated (including the discarded steps of envs that finished early)."""
        env, device, m = self.ctx.env, self.ctx.device, self.episodes_per_env
        N = env.num_envs
        obs = env.reset(seed=self._seed)
        self._seed = None
        obs_l: list[torch.Tensor] = []
        act_l: list[torch.Tensor] = []
        rew_l: list[np.ndarray] = []
        term_l: list[np.ndarray] = []
        trunc_l: list[np.ndarray] = []
        rec_l: list[np.ndarray] = []
        cuts = TruncationBootstrap()
        finished = np.zeros(N, dtype=np.int64)
        recording = np.ones(N, dtype=bool)
        while recording.any():
            obs_t = obs_to_tensor(obs, device)
            actions, _, _ = self.net.act(obs_t)
            step = env.step(to_env_actions(actions, self.action_space))
            t = len(obs_l)
            obs_l.append(obs_t)
            act_l.append(actions)
            rew_l.append(step.reward)
            term_l.append(step.terminated)
            trunc_l.append(step.truncated)
            rec_l.append(recording.copy())
            if self.cfg.baseline:  # without a critic the return simply ends at the cut
                cuts.add(t, step, mask=recording)
            finished += (step.terminated | step.truncated) & recording
            recording &= finished < m
            obs = step.obs
        T = len(obs_l)

        rewards = torch.from_numpy(np.stack(rew_l)).to(device)
        terminated = torch.from_numpy(np.stack(term_l)).to(device)
        truncated = torch.from_numpy(np.stack(trunc_l)).to(device)
        mask = torch.from_numpy(np.stack(rec_l)).to(device)
        # Bootstrap only where a time limit cut an episode (and only with a critic).
        next_values = torch.zeros_like(rewards)
        cuts.fill(next_values, self.net, device)
        returns = discounted_returns(rewards, next_values, terminated, truncated, self.cfg.gamma)

        # Episode id of each recorded step: env n's j-th episode is n * m + j.
        ends = (terminated | truncated).long()
        index_in_env = torch.cumsum(ends, dim=0) - ends
        episode = (index_in_env + m * torch.arange(N, device=device))[mask]
        episode_rewards = torch.zeros(N * m, dtype=torch.float64, device=device)
        episode_rewards.index_add_(0, episode, rewards[mask].double())
        batch = EpisodeBatch(
            obs=torch.stack(obs_l)[mask],
            actions=torch.stack(act_l)[mask],
            returns=returns[mask],
            episode=episode,
            num_episodes=N * m,
            episode_returns=episode_rewards.cpu().numpy(),
            episode_lengths=torch.bincount(episode, minlength=N * m).cpu().numpy(),
        )
        # The env also saw the discarded episodes of envs that finished early; the charts get
        # the episodes trained on (see pop_episodes).
        env.pop_episodes()
        return batch, T * N

    # --- update -------------------------------------------------------------------------------
    def update(self, batch: EpisodeBatch) -> None:
        cfg, rec = self.cfg, self.ctx.recorder
        lr = anneal_lr(self.optimizer, cfg.lr, cfg.anneal_lr, self.ctx.progress)

        log_probs, entropy, values = self.net.evaluate(batch.obs, batch.actions)
        returns = batch.returns
        baseline = values.detach() if cfg.baseline else torch.zeros_like(returns)
        advantages = returns - baseline

        if cfg.grad_variance and batch.num_episodes > 1:
            # Same batch, same parameters: the estimator used (G - V) and the one without the
            # baseline (G), before normalisation so that they differ by the baseline only.
            if cfg.baseline:
                weights = torch.stack([advantages, returns])
                variance = per_episode_gradient_variance(
                    log_probs, weights, batch.episode, batch.num_episodes, self._policy_params()
                )
                rec.scalar(tags.GRAD_VARIANCE, variance[0])
                rec.scalar(tags.GRAD_VARIANCE_NO_BASELINE, variance[1])
            else:
                variance = per_episode_gradient_variance(
                    log_probs, returns.unsqueeze(0), batch.episode, batch.num_episodes,
                    self._policy_params(),
                )
                rec.scalar(tags.GRAD_VARIANCE, variance[0])

        weights = advantages
        if cfg.normalize_returns and weights.numel() > 1:
            weights = standardize(weights)
        policy_loss = -(weights * log_probs).mean()
        entropy_mean = entropy.mean()
        loss = policy_loss - cfg.ent_coef * entropy_mean
        value_loss = (values - returns).pow(2).mean()
        if cfg.baseline:
            loss = loss + cfg.vf_coef * value_loss
        self.optimizer.zero_grad()
        loss.backward()
        # the norm of the policy-gradient step; the extra value fits below are not counted
        rec.scalar(tags.GRAD_NORM, self.optimizer.clip_grad_norm(cfg.max_grad_norm))
        self.optimizer.step()
        if cfg.baseline:
            for _ in range(cfg.value_steps - 1):
                fit = (self.net.value(batch.obs) - returns).pow(2).mean()
                self.optimizer.zero_grad()
                (cfg.vf_coef * fit).backward()
                self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                self.optimizer.step()

        rec.scalar(tags.LEARNING_RATE, lr)
        # Without a baseline V is never trained, so there is nothing to report about it; the Q
        # estimate of (s_t, a_t) is then the Monte-Carlo return itself.
        value_loss_logged = value_loss.detach() if cfg.baseline else None
        record_losses(rec, policy_loss.detach(), value_loss_logged, entropy_mean.detach())
        if cfg.baseline:
            v = values.detach()
            record_values(rec, v, advantages, returns)
            self._last = (v, advantages.detach(), returns)
        else:
            rec.scalar(tags.Q_MEAN, returns.mean())
            self._last = (None, None, returns)

    def _policy_params(self) -> list[nn.Parameter]:
        """Parameters log pi depends on (the critic-only ones get no gradient)."""
        return [p for name, p in self.net.named_parameters() if not name.startswith("value_head")]

    def iterate(self) -> int:
        batch, steps = self.collect()
        self._episodes.append((batch.episode_returns, batch.episode_lengths))
        self.update(batch)
        return steps

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        """The episodes trained on since the last call (each env's first episodes after a reset),
        for charts/episodic_return. The env's own list would add the discarded episodes of envs
        that finished early, which over-represents short episodes. Returns are sums of training
        rewards (for Atari's clipped rewards these differ from game scores)."""
        if not self._episodes:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        returns = np.concatenate([r for r, _ in self._episodes]).astype(np.float64)
        lengths = np.concatenate([n for _, n in self._episodes]).astype(np.int64)
        self._episodes.clear()
        return returns, lengths

    def diagnostics(self) -> None:
        if self._last is not None:
            v, advantages, returns = self._last
            value_estimates.record_histograms(
                self.ctx.recorder, q=returns, v=v, advantage=advantages
            )

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._seed = None  # a resumed run continues its env streams instead of replaying them
