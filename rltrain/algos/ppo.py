"""PPO with clipped objective and GAE (Schulman et al. 2017), for discrete and continuous actions.

Read top to bottom: the config, then the rollout (collect T steps of N envs with the current
policy), then the update (epochs x minibatches of the clipped surrogate, value and entropy terms).
Implementation details follow "The 37 implementation details of PPO" (Huang et al. 2022):
orthogonal init, advantage normalisation per minibatch, global grad-norm clipping, Adam eps 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from rltrain.algos.base import Context
from rltrain.core.optim import Adam
from rltrain.core.returns import gae
from rltrain.core.stats import explained_variance, standardize
from rltrain.errors import UserError
from rltrain.networks import build_actor_critic


@dataclass
class PPOConfig:
    name: str = "ppo"
    lr: float = 3e-4
    anneal_lr: bool = True  # linear decay to 0 over the step budget
    n_steps: int = 128  # rollout length per env; a rollout is n_steps x num_envs transitions
    batch_size: int = 64  # minibatch size
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    anneal_clip: bool = False  # linear decay of clip_coef to 0 (RL Zoo "lin_0.2")
    clip_value_loss: bool = False  # clip V around the old estimate, as in the PPO2 baselines
    normalize_advantages: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5  # loss = pg + vf_coef * mean((V - R)^2) - ent_coef * H  (SB3 convention)
    max_grad_norm: float = 0.5
    target_kl: float | None = None  # stop the epoch loop once approx KL > 1.5 * target_kl
    adam_eps: float = 1e-5
    # Categorical policy on two separate MLP towers: gradients from a hand-written backward pass
    # (rltrain/networks/backprop.py), the same numbers as autograd's and a minibatch step about
    # 1.8x faster on CartPole. false = autograd; other networks always use autograd.
    manual_backward: bool = True

    def __post_init__(self) -> None:
        for key in ("lr", "n_steps", "batch_size", "n_epochs", "max_grad_norm"):
            if getattr(self, key) <= 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be positive")
        if not 0.0 < self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise UserError(f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        if self.clip_coef <= 0:
            raise UserError(f"algo.clip_coef={self.clip_coef} must be positive")
        if self.ent_coef < 0 or self.vf_coef < 0:
            raise UserError(
                f"algo.ent_coef={self.ent_coef} and algo.vf_coef={self.vf_coef} must be >= 0"
            )


def clipped_surrogate_loss(
    ratio: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """L = -mean_i min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i)  (Schulman et al. 2017, eq. 7),

    r_i = pi(a_i|s_i) / pi_old(a_i|s_i).
    """
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()


def clipped_surrogate_grad(
    ratio: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """dL/d log pi(a_i|s_i) of `clipped_surrogate_loss`, with dr/d log pi = r:

    -r_i A_i / B where the unclipped term is the minimum; 0 where the clipped one is strictly
    smaller (it is then constant in r). Where both are equal, r is inside the clip range.
    """
    unclipped = ratio * advantages
    chosen = unclipped <= ratio.clamp(1 - clip, 1 + clip) * advantages
    return torch.where(chosen, unclipped, 0.0).mul_(-1.0 / ratio.numel())


def value_loss(
    values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """L = mean_i (V_i - R_i)^2; with clipping (PPO2 baselines), mean_i max((V_i - R_i)^2,
    (Vc_i - R_i)^2) where Vc_i = V_old_i + clip(V_i - V_old_i, -eps, eps)."""
    error = (values - returns).pow(2)
    if clip is None:
        return error.mean()
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return torch.max(error, (clipped - returns).pow(2)).mean()


def value_loss_grad(
    values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """dL/dV_i of `value_loss`: 2 (V_i - R_i) / B, and 0 where the clipped error is strictly
    larger (Vc is then clipped, constant in V)."""
    grad = (values - returns).mul_(2.0 / values.numel())
    if clip is None:
        return grad
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return grad.mul_((values - returns).pow(2) >= (clipped - returns).pow(2))


class Rollout(NamedTuple):
    """T x N transitions, time-major, on the training device."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPO:
    @staticmethod
    def check_env(obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise UserError(f"algo=ppo supports Discrete or Box actions, not {action_space}")

    def __init__(self, cfg: PPOConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env, device = ctx.env, ctx.device
        self.num_envs = env.num_envs
        rollout_size = cfg.n_steps * self.num_envs
        if ctx.run_dir is not None and cfg.batch_size > rollout_size:  # training, not `eval`
            raise UserError(
                f"algo.batch_size={cfg.batch_size} is larger than a rollout (algo.n_steps x "
                f"env.num_envs = {rollout_size}); use algo.batch_size<={rollout_size}"
            )
        self.net = build_actor_critic(
            env.single_observation_space, env.single_action_space, ctx.cfg.network
        ).to(device)
        self.optimizer = Adam(self.net.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        self.manual_backward = cfg.manual_backward and self.net.has_hand_backward
        self.discrete = self.net.discrete
        self.action_space = env.single_action_space

        # Preallocated rollout storage, [T, N, ...], in the observation's own dtype (uint8 frames).
        T, N = cfg.n_steps, self.num_envs
        obs_space = env.single_observation_space
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        obs_shape = tuple(obs_space.shape or ())
        act_shape = () if self.discrete else tuple(self.action_space.shape or ())
        self.obs_buf = torch.zeros((T, N, *obs_shape), dtype=obs_dtype, device=device)
        self.act_buf = torch.zeros(
            (T, N, *act_shape), dtype=torch.long if self.discrete else torch.float32, device=device
        )
        self.logp_buf = torch.zeros((T, N), device=device)
        self.val_buf = torch.zeros((T, N), device=device)
        # Env outputs stay in numpy during the rollout and cross to torch once per rollout.
        self.rew_buf = np.zeros((T, N), dtype=np.float32)
        self.term_buf = np.zeros((T, N), dtype=np.float32)
        self.trunc_buf = np.zeros((T, N), dtype=np.float32)
        self.obs = env.reset(seed=ctx.cfg.seed)

    # --- acting -----------------------------------------------------------------------------
    def _to_tensor(self, obs: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(obs)
        if tensor.dtype == torch.float64:
            tensor = tensor.float()
        return tensor.to(self.ctx.device, non_blocking=True)

    def _to_env_actions(self, actions: torch.Tensor) -> np.ndarray:
        array = actions.cpu().numpy()
        if not self.discrete:
            # The Gaussian is unbounded; the env gets the action clipped to its box, the buffer
            # keeps the sampled one so log-probabilities stay exact.
            assert isinstance(self.action_space, gym.spaces.Box)
            array = np.clip(array, self.action_space.low, self.action_space.high)
        return array

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _, _ = self.net.act(self._to_tensor(obs), deterministic)
        return self._to_env_actions(actions)

    # --- rollout ----------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> Rollout:
        cfg, env = self.cfg, self.ctx.env
        truncated_final: list[tuple[int, np.ndarray, np.ndarray]] = []
        for t in range(cfg.n_steps):
            obs = self._to_tensor(self.obs)
            actions, log_probs, values = self.net.act(obs)
            step = env.step(self._to_env_actions(actions))
            self.obs_buf[t] = obs
            self.act_buf[t] = actions
            self.logp_buf[t] = log_probs
            self.val_buf[t] = values
            self.rew_buf[t] = step.reward
            self.term_buf[t] = step.terminated
            self.trunc_buf[t] = step.truncated
            if step.truncated.any():
                rows = np.flatnonzero(step.truncated & ~step.terminated)
                truncated_final.append((t, rows, step.final_obs[rows]))
            self.obs = step.obs

        # V(s_{t+1}): the next row's value, V(last obs) after the rollout, and V(final obs) where
        # a time limit cut the episode (one batched forward pass for all of those).
        next_values = torch.empty_like(self.val_buf)
        next_values[:-1] = self.val_buf[1:]
        next_values[-1] = self.net.value(self._to_tensor(self.obs))
        if truncated_final:
            finals = self._to_tensor(np.concatenate([f for _, _, f in truncated_final]))
            final_values = self.net.value(finals)
            times = np.concatenate([np.full(len(r), t) for t, r, _ in truncated_final])
            rows = np.concatenate([r for _, r, _ in truncated_final])
            next_values[times, rows] = final_values
        device = self.ctx.device
        advantages, returns = gae(
            torch.from_numpy(self.rew_buf).to(device),
            self.val_buf,
            next_values,
            torch.from_numpy(self.term_buf).to(device),
            torch.from_numpy(self.trunc_buf).to(device),
            cfg.gamma,
            cfg.gae_lambda,
        )
        return Rollout(self.obs_buf, self.act_buf, self.logp_buf, self.val_buf, advantages, returns)

    # --- update -----------------------------------------------------------------------------
    def update(self, rollout: Rollout) -> None:
        cfg, rec = self.cfg, self.ctx.recorder
        remaining = 1.0 - self.ctx.progress
        lr = cfg.lr * remaining if cfg.anneal_lr else cfg.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        clip = cfg.clip_coef * remaining if cfg.anneal_clip else cfg.clip_coef
        clip = max(clip, 1e-8)

        obs = rollout.obs.flatten(0, 1)
        # Image rollouts on the CPU: minibatches come from an NHWC copy made once per rollout,
        # the layout NatureCNN convolves in there, and index_select copies whole rows (obs[idx]
        # copies uint8 frames byte by byte). A 256-stack minibatch of Atari frames, gathered and
        # converted to float: 30.6 -> 13.6 ms of CPU here.
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
        # gathers per epoch), and its advantages are standardized once, not every epoch. That
        # made the CartPole update phase about 8% faster here.
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
                mb_actions, mb_old_values, mb_returns = actions[idx], old_values[idx], returns[idx]
                if self.manual_backward:  # the same numbers, and what the backward pass needs
                    log_probs, entropy, values, saved = self.net.evaluate_by_hand(
                        mb_obs, mb_actions
                    )
                else:
                    log_probs, entropy, values = self.net.evaluate(mb_obs, mb_actions)
                log_ratio = log_probs - old_log_probs[idx]
                ratio = log_ratio.exp()
                if whole:
                    adv = whole_advantages
                else:
                    adv = standardize(advantages[idx]) if normalize else advantages[idx]
                policy_loss = clipped_surrogate_loss(ratio, adv, clip)
                critic_loss = value_loss(values, mb_returns, mb_old_values, value_clip)
                entropy_mean = entropy.mean()

                with torch.no_grad():
                    # k3 estimator of KL(old || new) (Schulman 2020): E[(r - 1) - log r]
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                    clip_fraction = ((ratio - 1).abs() > clip).float().mean()
                if cfg.target_kl is not None and approx_kl.item() > 1.5 * cfg.target_kl:
                    stop = True
                    break
                if self.manual_backward:
                    # loss = pg + vf_coef * value_loss - ent_coef * mean H, by the chain rule
                    grad_value = value_loss_grad(values, mb_returns, mb_old_values, value_clip)
                    self.net.backward_by_hand(
                        saved,
                        clipped_surrogate_grad(ratio, adv, clip),
                        grad_value.mul_(cfg.vf_coef),
                        -cfg.ent_coef / ratio.numel(),
                    )
                else:
                    loss = policy_loss + cfg.vf_coef * critic_loss - cfg.ent_coef * entropy_mean
                    self.optimizer.zero_grad()
                    loss.backward()
                grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
                self.optimizer.step()

                rec.scalar("losses/policy_loss", policy_loss)
                rec.scalar("losses/value_loss", critic_loss)
                rec.scalar("losses/entropy", entropy_mean)
                rec.scalar("policy/entropy", entropy_mean)
                rec.scalar("policy/approx_kl", approx_kl)
                rec.scalar("policy/clip_fraction", clip_fraction)
                rec.scalar("losses/grad_norm", grad_norm)
            if stop:
                break

        # Value diagnostics of this rollout: V, the advantage A (GAE) and Q = A + V.
        rec.scalar("charts/learning_rate", lr)
        rec.scalar("values/v_mean", old_values.mean())
        rec.scalar("values/q_mean", returns.mean())
        rec.scalar("values/advantage_mean", advantages.mean())
        rec.scalar("values/advantage_std", advantages.std())
        rec.scalar("values/explained_variance", explained_variance(old_values, returns))
        self._last_values, self._last_advantages = old_values, advantages

    def iterate(self) -> int:
        self.update(self.collect())
        return self.cfg.n_steps * self.num_envs

    def diagnostics(self) -> None:
        if hasattr(self, "_last_values"):
            self.ctx.recorder.histogram("values/v", self._last_values)
            self.ctx.recorder.histogram("values/advantage", self._last_advantages)

    # --- checkpoint -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs": torch.from_numpy(np.ascontiguousarray(self.obs)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs = state["obs"].numpy()
