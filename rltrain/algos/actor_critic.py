"""What the actor-critic family (PPO, A2C, A3C, REINFORCE) shares, written once.

- the env check, and actions from the policy's samples to the env (`to_env_actions`);
- optimizer construction and linear learning-rate annealing;
- reward scaling by the running std of the return (`RewardScaler`);
- the n-step rollout (`RolloutCollector`) with the time-limit bootstrap (`TruncationBootstrap`:
  a truncated episode bootstraps from V(final_obs), a terminated one from 0);
- what every member logs about its value estimates: V, the advantage A and Q = A + V;
- what the Python API and `rltrain export` read from the network (`ActorCriticInference`).

Each algorithm file keeps what makes it that algorithm: its loss, its update and its schedule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltrain import tags
from rltrain.algos import value_estimates
from rltrain.algos.base import obs_to_tensor
from rltrain.blocks.optim import Adam, FlatOptimizer, RMSprop
from rltrain.blocks.returns import gae
from rltrain.blocks.schedules import linear
from rltrain.blocks.stats import explained_variance, standardize
from rltrain.envs.vec import Transition, VecEnv
from rltrain.errors import UserError
from rltrain.logging import Recorder
from rltrain.networks import ActorCritic
from rltrain.networks.hand_backward import Evaluation, HeadGrad, HeadLoss
from rltrain.networks.policy import DeterministicActorCritic


def check_actor_critic_env(
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


# --- numpy envs, torch networks -----------------------------------------------------------------
def to_env_actions(actions: torch.Tensor, action_space: gym.Space[Any]) -> np.ndarray:
    """Actions for env.step. An unsquashed Gaussian is unbounded: the env gets the sample clipped
    to its box while the rollout keeps the sample itself, so log-probabilities stay exact."""
    array = actions.cpu().numpy()
    if isinstance(action_space, gym.spaces.Box):
        array = np.clip(array, action_space.low, action_space.high)
    return array


# --- optimizers ---------------------------------------------------------------------------------
def make_optimizer(
    params: Iterable[nn.Parameter], name: str, lr: float, rms_alpha: float, eps: float
) -> Adam | RMSprop:
    """RMSprop as in SB3/RL Zoo (torch's form: eps added after the square root) or Adam, both
    over one flat parameter buffer (rltrain.blocks.optim)."""
    if name == "rmsprop":
        return RMSprop(params, lr=lr, alpha=rms_alpha, eps=eps)
    return Adam(params, lr=lr, eps=eps)


def anneal_lr(optimizer: FlatOptimizer, lr: float, anneal: bool, progress: float) -> float:
    """Sets and returns the step size: lr * (1 - p) with annealing (p = budget used), else lr."""
    value = linear(lr, 0.0, progress) if anneal else lr
    for group in optimizer.param_groups:
        group["lr"] = value
    return value


# --- rewards ------------------------------------------------------------------------------------
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
        return {
            "returns": torch.from_numpy(self.returns.copy()),
            "stats": torch.tensor([self.count, self.mean, self.var], dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].numpy().copy()
        self.count, self.mean, self.var = (float(x) for x in state["stats"])


# --- the time-limit bootstrap -------------------------------------------------------------------
class TruncationBootstrap:
    """The final observations of episodes a time limit cut (truncated, not terminated), by step,
    so that one batched forward pass values them all: V(final_obs) goes into next_values[t, env]
    (Pardo et al. 2018). A terminated episode keeps next value 0 from the caller's mask.

    `whole_steps`: keep the final observations of every env of a step with a cut, and value
    whole steps: a population's policy (rltrain/algos/population.py) values each seed's
    envs with that seed's weights, so it takes observations of all envs at once.
    """

    def __init__(self, whole_steps: bool = False) -> None:
        self.whole_steps = whole_steps
        self._cuts: list[tuple[int, np.ndarray, np.ndarray]] = []

    def add(self, t: int, step: Transition, mask: np.ndarray | None = None) -> None:
        cut = step.truncated & ~step.terminated
        if mask is not None:
            cut &= mask
        if cut.any():
            rows = np.flatnonzero(cut)
            finals = step.final_obs.copy() if self.whole_steps else step.final_obs[rows]
            self._cuts.append((t, rows, finals))

    @torch.no_grad()
    def fill(self, next_values: torch.Tensor, net: RolloutPolicy, device: torch.device) -> None:
        """next_values[t, rows] <- V(final_obs) for every cut recorded, in place."""
        if not self._cuts:
            return
        finals = obs_to_tensor(np.concatenate([f for _, _, f in self._cuts]), device)
        times = np.concatenate([np.full(len(r), t) for t, r, _ in self._cuts])
        rows = np.concatenate([r for _, r, _ in self._cuts])
        values = net.value(finals)
        if self.whole_steps:  # [cuts x envs] values: each cut's own rows
            which = np.concatenate([np.full(len(r), i) for i, (_, r, _) in enumerate(self._cuts)])
            values = values.view(len(self._cuts), -1)[which, rows]
        next_values[times, rows] = values


# --- the n-step rollout -------------------------------------------------------------------------
class Rollout(NamedTuple):
    """T x N transitions, time-major, on the training device."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor  # log pi_old(a_t|s_t) when acting
    values: torch.Tensor  # V(s_t) when acting
    advantages: torch.Tensor  # GAE(lambda); lambda = 1: n-step return - V
    returns: torch.Tensor  # advantages + values: the value target and the Q estimate


class RolloutPolicy(Protocol):
    """What a rollout asks of its policy (an `ActorCritic`, or a population of them)."""

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled actions, log pi(a|s) and V(s) for one row of observations per env."""
        ...

    def value(self, obs: torch.Tensor) -> torch.Tensor: ...


class RolloutCollector:
    """Steps a vector env `n_steps` times with a policy and computes GAE advantages.

    Truncated episodes bootstrap from V(final_obs), terminated ones from 0, and the rollout's last
    row from V of the observation to act on next (`rltrain.blocks.returns.gae`). Env outputs are
    stored in preallocated host (numpy) memory and cross to the device once per rollout: the env
    hands out numpy arrays anyway, and a numpy row write costs far less than a torch one.
    """

    def __init__(
        self,
        env: VecEnv,
        n_steps: int,
        device: torch.device,
        obs: np.ndarray,
        reward_scaler: RewardScaler | None = None,
        whole_steps: bool = False,
    ) -> None:
        self.env, self.n_steps, self.device = env, n_steps, device
        self.reward_scaler = reward_scaler
        self.whole_steps = whole_steps  # see TruncationBootstrap
        self.action_space = env.single_action_space
        self.obs = obs  # what the envs show now: the next rollout acts on it
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
    def collect(self, net: RolloutPolicy, gamma: float, gae_lambda: float) -> Rollout:
        values: list[torch.Tensor] = []
        log_probs: list[torch.Tensor] = []
        cuts = TruncationBootstrap(self.whole_steps)
        for t in range(self.n_steps):
            self.obs_buf[t] = self.obs
            actions, log_prob, value = net.act(obs_to_tensor(self.obs_buf[t], self.device))
            self.act_buf[t] = actions.cpu().numpy()
            log_probs.append(log_prob)
            values.append(value)
            step = self.env.step(to_env_actions(actions, self.action_space))
            if self.reward_scaler is None:
                self.rew_buf[t] = step.reward
            else:
                self.rew_buf[t] = self.reward_scaler(step.reward, step.terminated | step.truncated)
            self.term_buf[t] = step.terminated
            self.trunc_buf[t] = step.truncated
            cuts.add(t, step)
            self.obs = step.obs

        def device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(self.device)

        # V(s_{t+1}): the next row's value, V(next obs) after the last row, V(final obs) where a
        # time limit cut the episode.
        values.append(net.value(obs_to_tensor(self.obs, self.device)))
        all_values = torch.stack(values)
        value_now, next_values = all_values[:-1], all_values[1:].clone()
        cuts.fill(next_values, net, self.device)
        advantages, returns = gae(
            device(self.rew_buf), value_now, next_values, device(self.term_buf),
            device(self.trunc_buf), gamma, gae_lambda,
        )  # fmt: skip
        return Rollout(
            device(self.obs_buf.copy()), device(self.act_buf.copy()), torch.stack(log_probs),
            value_now, advantages, returns,
        )  # fmt: skip


# --- what the family logs -----------------------------------------------------------------------
def record_values(
    rec: Recorder, values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor
) -> None:
    """V(s_t) as estimated when acting, the advantage A_t and Q(s_t, a_t) estimated as A_t + V."""
    rec.scalar(tags.V_MEAN, values.mean())
    rec.scalar(tags.Q_MEAN, returns.mean())
    rec.scalar(tags.ADVANTAGE_MEAN, advantages.mean())
    rec.scalar(tags.ADVANTAGE_STD, advantages.std() if advantages.numel() > 1 else 0.0)
    rec.scalar(tags.EXPLAINED_VARIANCE, explained_variance(values, returns))


def record_losses(
    rec: Recorder, policy_loss: torch.Tensor | float, value_loss: torch.Tensor | float | None,
    entropy: torch.Tensor | float,
) -> None:  # fmt: skip
    rec.scalar(tags.POLICY_LOSS, policy_loss)
    if value_loss is not None:
        rec.scalar(tags.VALUE_LOSS, value_loss)
    rec.scalar(tags.ENTROPY, entropy)


def record_histograms(
    rec: Recorder, values: torch.Tensor | np.ndarray, advantages: torch.Tensor | np.ndarray,
    returns: torch.Tensor | np.ndarray,
) -> None:  # fmt: skip
    """Histograms of the same V, A and Q = A + V (the return target) as `record_values`."""
    value_estimates.record_histograms(rec, q=returns, v=values, advantage=advantages)


# --- the advantage actor-critic loss (A2C, and each A3C worker) ---------------------------------
class LossStats(NamedTuple):
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor


def flat_batch(
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
    out: Evaluation,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    vf_coef: float,
    ent_coef: float,
    closed_form: bool = False,
) -> tuple[HeadLoss, LossStats]:
    """L = -mean_t[A_t log pi(a_t|s_t)] + vf_coef * mean_t[(V(s_t) - R_t)^2] - ent_coef * mean_t H.

    A_t is a constant (no gradient through the advantage), R_t = A_t + V_old(s_t) the target
    (Mnih et al. 2016, algorithm S3). With `closed_form`, its gradient per row instead, over a
    batch of B: dL/d log pi_t = -A_t / B, dL/dV_t = 2 vf_coef (V_t - R_t) / B,
    dL/dH_t = -ent_coef / B. The means are over the last axis: a population's [K, B] gives each
    seed's own loss, [K] (rltrain/algos/a2c_population.py).
    """
    n = advantages.shape[-1]
    policy_loss = -(advantages * out.log_probs).mean(-1)
    value_loss = (out.values - returns).pow(2).mean(-1)
    entropy_mean = out.entropy.mean(-1)
    stats = LossStats(policy_loss.detach(), value_loss.detach(), entropy_mean.detach())
    if closed_form:
        grad = HeadGrad(
            advantages * (-1.0 / n), -ent_coef / n, (out.values - returns).mul_(2 * vf_coef / n)
        )
        return HeadLoss(None, grad), stats
    return HeadLoss(policy_loss + vf_coef * value_loss - ent_coef * entropy_mean), stats


# --- what the Python API and `rltrain export` read ----------------------------------------------
class ActorCriticInference:
    """V(s) and the deterministic policy module of a member whose network is `self.net`
    (listed before `Algorithm` among the bases, so these replace the protocol's "not used")."""

    net: ActorCritic
    action_space: gym.Space[Any]
    has_value = True  # REINFORCE without a baseline trains no value head

    @torch.no_grad()
    def state_values(self, obs: np.ndarray) -> np.ndarray | None:
        if not self.has_value:
            return None
        device = next(self.net.parameters()).device
        return self.net.value(obs_to_tensor(obs, device)).cpu().numpy()  # type: ignore[no-any-return]

    def policy_module(self) -> nn.Module | None:
        return DeterministicActorCritic(self.net, self.action_space, self.has_value)
