"""A2C: synchronous n-step advantage actor-critic (Mnih et al. 2016, the synchronous variant).

Read top to bottom: the config, then the rollout (n_steps of N vectorized envs with the current
policy, advantages by GAE(lambda); lambda = 1 gives the n-step returns of the paper), then the
loss (policy gradient with the advantage, value regression, entropy bonus) and one optimizer step
per rollout. Defaults are Stable-Baselines3's A2C: RMSprop(alpha 0.99, eps 1e-5), lr 7e-4,
n_steps 5, vf_coef 0.5, max_grad_norm 0.5, no advantage normalisation.

The rollout collector and the loss are plain pieces that A3C (rltrain/algos/a3c.py) reuses: an A3C
worker is this algorithm on one env, applying its gradient to a shared model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltrain.algos.base import Context
from rltrain.core.optim import Adam, RMSprop
from rltrain.core.returns import gae
from rltrain.core.stats import explained_variance, standardize
from rltrain.envs.vec import VecEnv
from rltrain.errors import UserError
from rltrain.logging import Recorder
from rltrain.networks import ActorCritic, build_actor_critic

OPTIMIZERS = ("rmsprop", "adam")


@dataclass
class A2CConfig:
    name: str = "a2c"
    lr: float = 7e-4
    anneal_lr: bool = False  # linear decay to 0 over the step budget (RL Zoo "lin_7e-4")
    n_steps: int = 5  # rollout length per env; one update per n_steps x num_envs transitions
    gamma: float = 0.99
    gae_lambda: float = 1.0  # 1.0: n-step returns bootstrapped from V at the rollout end
    ent_coef: float = 0.0
    vf_coef: float = 0.5  # loss = pg + vf_coef * mean((V - R)^2) - ent_coef * H  (SB3 convention)
    max_grad_norm: float = 0.5
    optimizer: str = "rmsprop"  # rmsprop (SB3 / RL Zoo) | adam
    rms_alpha: float = 0.99  # RMSprop smoothing constant
    eps: float = 1e-5  # RMSprop / Adam epsilon
    normalize_advantages: bool = False
    # divide rewards by a running std of the discounted return (RL Zoo's `normalize: true`);
    # V and the values/* diagnostics are then in those scaled units
    normalize_rewards: bool = False
    # Categorical policy on two separate MLP towers: gradients from a hand-written backward pass
    # (rltrain/networks/backprop.py), the same numbers as autograd's; false = autograd
    manual_backward: bool = True

    def __post_init__(self) -> None:
        check_actor_critic_config(self)


def check_actor_critic_config(cfg: Any) -> None:
    """Range checks shared by A2C and A3C configs: one line naming the key."""
    for key in ("lr", "n_steps", "max_grad_norm", "eps"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"algo.{key}={getattr(cfg, key)} must be positive")
    if not 0.0 < cfg.gamma <= 1.0:
        raise UserError(f"algo.gamma={cfg.gamma} must be in (0, 1]")
    if not 0.0 <= cfg.gae_lambda <= 1.0:
        raise UserError(f"algo.gae_lambda={cfg.gae_lambda} must be in [0, 1]")
    if not 0.0 <= cfg.rms_alpha < 1.0:
        raise UserError(f"algo.rms_alpha={cfg.rms_alpha} must be in [0, 1)")
    for key in ("ent_coef", "vf_coef"):
        if getattr(cfg, key) < 0:
            raise UserError(f"algo.{key}={getattr(cfg, key)} must be >= 0")
    if cfg.optimizer not in OPTIMIZERS:
        raise UserError(f"algo.optimizer={cfg.optimizer} is not known; use rmsprop or adam")


def check_policy_gradient_env(
    algo: str, obs_space: gym.Space[Any], action_space: gym.Space[Any]
) -> None:
    """What the actor-critic networks can take: Box/Discrete observations, Discrete/Box actions."""
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise UserError(
            f"algo={algo} needs Discrete or Box actions, not {action_space}; "
            "this env needs a custom policy head"
        )
    if not isinstance(obs_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise UserError(
            f"algo={algo} needs Box or Discrete observations, not {obs_space}; "
            "flatten the observation with a wrapper first"
        )


# --- small shared pieces ----------------------------------------------------------------------
def obs_to_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    """Numpy observations to the device; float64 (classic control) becomes float32."""
    tensor = torch.from_numpy(np.asarray(obs))
    if tensor.dtype == torch.float64:
        tensor = tensor.float()
    return tensor.to(device, non_blocking=True)


def to_env_actions(actions: torch.Tensor, action_space: gym.Space[Any]) -> np.ndarray:
    """Actions for env.step. An unsquashed Gaussian is unbounded: the env gets the sample clipped
    to its box while the rollout keeps the sample itself, so log-probabilities stay exact."""
    array = actions.cpu().numpy()
    if isinstance(action_space, gym.spaces.Box):
        array = np.clip(array, action_space.low, action_space.high)
    return array


def make_optimizer(
    params: Iterable[nn.Parameter], name: str, lr: float, rms_alpha: float, eps: float
) -> Adam | RMSprop:
    """RMSprop as in SB3/RL Zoo (torch's form: eps added after the square root) or Adam, both
    over one flat parameter buffer (rltrain/core/optim.py): zero_grad, clip and step are a few
    tensor operations whatever the number of layers."""
    if name == "rmsprop":
        return RMSprop(params, lr=lr, alpha=rms_alpha, eps=eps)
    return Adam(params, lr=lr, eps=eps)


class RewardScaler:
    """Reward scaling by the running standard deviation of the discounted return.

        R_t = gamma * R_{t-1} * (1 - done_{t-1}) + r_t        (per env)
        r_t' = clip(r_t / sqrt(Var[R] + 1e-8), -10, 10)

    with Var[R] a running variance over every env and step seen (Chan et al.'s parallel update).
    This is Stable-Baselines3's VecNormalize reward normalisation, which RL Zoo's `normalize: true`
    turns on; Engstrom et al. (2020) show how much such scaling matters for policy gradients.
    Only the scale changes (no mean is subtracted), so the optimal policy is the same.
    """

    CLIP = 10.0

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.count, self.mean, self.var = 1e-4, 0.0, 1.0

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + reward
        self._update(self.returns)
        self.returns[done] = 0.0
        scaled = reward / np.sqrt(self.var + 1e-8)
        return np.clip(scaled, -self.CLIP, self.CLIP).astype(np.float32)

    def _update(self, batch: np.ndarray) -> None:
        n, batch_mean, batch_var = batch.size, float(batch.mean()), float(batch.var())
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"returns": torch.from_numpy(self.returns.copy()),
                "stats": torch.tensor([self.count, self.mean, self.var], dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].numpy().copy()
        self.count, self.mean, self.var = (float(x) for x in state["stats"])


# --- rollout ----------------------------------------------------------------------------------
class Rollout(NamedTuple):
    """T x N transitions, time-major, on the training device."""

    obs: torch.Tensor
    actions: torch.Tensor
    values: torch.Tensor  # V(s_t) when acting
    advantages: torch.Tensor  # GAE(lambda); lambda = 1: n-step return - V
    returns: torch.Tensor  # advantages + values: the value target and the Q estimate


class NStepCollector:
    """Steps a vector env `n_steps` times with a policy and computes advantages.

    Truncated episodes bootstrap from V(final_obs), terminated ones from 0, and the rollout's last
    row from V of the observation to act on next (`rltrain.core.returns.gae`). The per-step
    storage is preallocated host (numpy) memory, moved to the device once per rollout: the env
    hands out numpy arrays anyway, and a numpy row write costs far less than a torch one.
    """

    def __init__(
        self,
        env: VecEnv,
        n_steps: int,
        device: torch.device,
        obs: np.ndarray,
        reward_scaler: RewardScaler | None = None,
    ) -> None:
        self.env, self.n_steps, self.device = env, n_steps, device
        self.reward_scaler = reward_scaler
        self.action_space = env.single_action_space
        self.obs = obs
        T, N = n_steps, env.num_envs
        obs_space = env.single_observation_space
        obs_dtype = np.uint8 if obs_space.dtype == np.uint8 else np.float32
        discrete = isinstance(self.action_space, gym.spaces.Discrete)
        act_shape = () if discrete else tuple(self.action_space.shape or ())
        self.obs_buf = np.zeros((T, N, *(obs_space.shape or ())), dtype=obs_dtype)
        self.act_buf = np.zeros((T, N, *act_shape), dtype=np.int64 if discrete else np.float32)
        self.rew_buf = np.zeros((T, N), dtype=np.float32)
        self.term_buf = np.zeros((T, N), dtype=np.float32)
        self.trunc_buf = np.zeros((T, N), dtype=np.float32)

    @torch.no_grad()
    def collect(self, net: ActorCritic, gamma: float, gae_lambda: float) -> Rollout:
        values: list[torch.Tensor] = []
        truncated_final: list[tuple[int, np.ndarray, np.ndarray]] = []
        for t in range(self.n_steps):
            self.obs_buf[t] = self.obs
            actions, _, value = net.act(obs_to_tensor(self.obs_buf[t], self.device))
            sampled = actions.cpu().numpy()
            self.act_buf[t] = sampled
            values.append(value)
            if isinstance(self.action_space, gym.spaces.Box):
                sampled = np.clip(sampled, self.action_space.low, self.action_space.high)
            step = self.env.step(sampled)
            if self.reward_scaler is None:
                self.rew_buf[t] = step.reward
            else:
                self.rew_buf[t] = self.reward_scaler(step.reward, step.terminated | step.truncated)
            self.term_buf[t] = step.terminated
            self.trunc_buf[t] = step.truncated
            if step.truncated.any():
                rows = np.flatnonzero(step.truncated & ~step.terminated)
                truncated_final.append((t, rows, step.final_obs[rows]))
            self.obs = step.obs

        def device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(self.device)

        # V(s_{t+1}): the next row's value, V(next obs) after the last row, V(final obs) where a
        # time limit cut the episode (one batched forward pass for all of those).
        values.append(net.value(obs_to_tensor(self.obs, self.device)))
        all_values = torch.stack(values)
        value_now, next_values = all_values[:-1], all_values[1:].clone()
        if truncated_final:
            finals = obs_to_tensor(np.concatenate([f for _, _, f in truncated_final]), self.device)
            times = np.concatenate([np.full(len(r), t) for t, r, _ in truncated_final])
            rows = np.concatenate([r for _, r, _ in truncated_final])
            next_values[times, rows] = net.value(finals)
        advantages, returns = gae(
            device(self.rew_buf), value_now, next_values, device(self.term_buf),
            device(self.trunc_buf), gamma, gae_lambda,
        )
        return Rollout(
            device(self.obs_buf.copy()), device(self.act_buf.copy()), value_now, advantages,
            returns,
        )


# --- loss -------------------------------------------------------------------------------------
class LossStats(NamedTuple):
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor


def _flat_batch(
    rollout: Rollout, normalize_advantages: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(obs, actions, advantages, returns) of a rollout as one batch, advantages standardized
    when asked (a single transition has no spread to divide by)."""
    advantages = rollout.advantages.flatten()
    if normalize_advantages and advantages.numel() > 1:
        advantages = standardize(advantages)
    obs, actions = rollout.obs.flatten(0, 1), rollout.actions.flatten(0, 1)
    return obs, actions, advantages, rollout.returns.flatten()


def actor_critic_loss(
    net: ActorCritic,
    rollout: Rollout,
    vf_coef: float,
    ent_coef: float,
    normalize_advantages: bool,
) -> tuple[torch.Tensor, LossStats]:
    """L = -mean_t[A_t log pi(a_t|s_t)] + vf_coef * mean_t[(V(s_t) - R_t)^2] - ent_coef * mean_t H.

    A_t is a constant (no gradient through the advantage), R_t = A_t + V_old(s_t) the target.
    """
    obs, actions, advantages, returns = _flat_batch(rollout, normalize_advantages)
    log_probs, entropy, values = net.evaluate(obs, actions)
    policy_loss = -(advantages * log_probs).mean()
    value_loss = (values - returns).pow(2).mean()
    entropy_mean = entropy.mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean
    return loss, LossStats(policy_loss.detach(), value_loss.detach(), entropy_mean.detach())


@torch.no_grad()
def actor_critic_gradients(
    net: ActorCritic,
    rollout: Rollout,
    vf_coef: float,
    ent_coef: float,
    normalize_advantages: bool,
) -> LossStats:
    """The gradient of `actor_critic_loss` by hand (`ActorCritic.backward_by_hand`), written into
    the parameters' .grad; returns the same statistics. Over a batch of B transitions:

        dL/d log pi(a_t|s_t) = -A_t / B,  dL/dV_t = 2 vf_coef (V_t - R_t) / B,
        dL/dH_t = -ent_coef / B
    """
    obs, actions, advantages, returns = _flat_batch(rollout, normalize_advantages)
    log_probs, entropy, values, saved = net.evaluate_by_hand(obs, actions)
    batch = advantages.numel()
    error = values - returns
    net.backward_by_hand(
        saved, advantages * (-1.0 / batch), error * (2.0 * vf_coef / batch), -ent_coef / batch
    )
    policy_loss = -(advantages * log_probs).mean()
    return LossStats(policy_loss, error.pow(2).mean(), entropy.mean())


def record_value_diagnostics(rec: Recorder, rollout: Rollout) -> None:
    """V, the advantage A and Q = A + V of a rollout (DESIGN.md section 4)."""
    values, advantages, returns = rollout.values, rollout.advantages, rollout.returns
    rec.scalar("values/v_mean", values.mean())
    rec.scalar("values/q_mean", returns.mean())
    rec.scalar("values/advantage_mean", advantages.mean())
    rec.scalar("values/advantage_std", advantages.std())
    rec.scalar("values/explained_variance", explained_variance(values, returns))


def record_losses(rec: Recorder, stats: LossStats) -> None:
    rec.scalar("losses/policy_loss", stats.policy_loss)
    rec.scalar("losses/value_loss", stats.value_loss)
    rec.scalar("losses/entropy", stats.entropy)
    rec.scalar("policy/entropy", stats.entropy)


# --- the algorithm ----------------------------------------------------------------------------
class A2C:
    @staticmethod
    def check_env(obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_policy_gradient_env("a2c", obs_space, action_space)

    def __init__(self, cfg: A2CConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env = ctx.env
        self.net = build_actor_critic(
            env.single_observation_space, env.single_action_space, ctx.cfg.network
        ).to(ctx.device)
        self.optimizer = make_optimizer(
            self.net.parameters(), cfg.optimizer, cfg.lr, cfg.rms_alpha, cfg.eps
        )
        self.manual_backward = cfg.manual_backward and self.net.has_hand_backward
        self.action_space = env.single_action_space
        scaler = RewardScaler(env.num_envs, cfg.gamma) if cfg.normalize_rewards else None
        self.collector = NStepCollector(
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
        lr = cfg.lr * (1.0 - self.ctx.progress) if cfg.anneal_lr else cfg.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        if self.manual_backward:
            stats = actor_critic_gradients(
                self.net, rollout, cfg.vf_coef, cfg.ent_coef, cfg.normalize_advantages
            )
        else:
            loss, stats = actor_critic_loss(
                self.net, rollout, cfg.vf_coef, cfg.ent_coef, cfg.normalize_advantages
            )
            self.optimizer.zero_grad()
            loss.backward()
        self.optimizer.clip_grad_norm(cfg.max_grad_norm)
        self.optimizer.step()

        rec.scalar("charts/learning_rate", lr)
        record_losses(rec, stats)
        record_value_diagnostics(rec, rollout)
        self._last = rollout
        return cfg.n_steps * self.ctx.env.num_envs

    def diagnostics(self) -> None:
        if self._last is not None:
            self.ctx.recorder.histogram("values/v", self._last.values.flatten())
            self.ctx.recorder.histogram("values/advantage", self._last.advantages.flatten())

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
