"""DQN (Mnih et al. 2015) with Double, dueling, n-step and prioritized-replay flags.

Read top to bottom: the config, the pure math (epsilon schedule, TD targets, the loss, the
target-network update, returns-to-go for the overestimation measure), then the algorithm:
`iterate()` acts `train_freq` steps in every env (epsilon-greedy, batched over envs), stores the
transitions in replay, then runs `gradient_steps` updates on sampled minibatches.

Flags on the same algorithm (Rainbow's ablation components, Hessel et al. 2018):
- `algo.double`: Double DQN target (van Hasselt et al. 2016, arXiv:1509.06461): the online net
  picks the argmax action at s', the target net values it; this removes the max operator's
  upward bias that the vanilla target max_a Q_target(s', a) has under noisy estimates.
- `network.dueling`: Q = V + A - mean_a A (Wang et al. 2016), built by `QNetwork`.
- `algo.n_step`: n-step returns, formed by the replay buffer at sample time.
- `algo.prioritized`: proportional prioritized replay (Schaul et al. 2016) with importance
  weights in the loss and beta annealed linearly from `beta_start` to 1 over the step budget.

Overestimation diagnostic (`values/q_bias`): while acting we already compute Q(s, .) for every
env, so Q(s_t, a_t) of the action taken is kept per env, next to the rewards, until the episode
ends; then Q(s_t, a_t) - G_t with G_t the discounted return that followed is summed, and at log
time values/q_bias is the mean over the transitions of the episodes that ended in the window. A
time-limit truncation bootstraps the tail with max_a Q(s_T, a) of the online net (truncated
episodes are kept, not skipped: on CartPole every good episode ends by the 500-step limit); that
tail term is discounted by gamma^(T-t), so it shrinks the measured bias only near the cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rltrain.algos.base import Context
from rltrain.core.buffers import PrioritizedReplay, ReplaySample, make_replay_buffer
from rltrain.core.checkpoint import envs_restored, warn_stderr
from rltrain.core.optim import Adam
from rltrain.errors import UserError
from rltrain.networks.builders import build_q_network, is_image_space

LOSSES = ("huber", "mse")


@dataclass
class DQNConfig:
    # Defaults follow Stable-Baselines3's DQN (which follows Mnih et al. 2015) except the buffer:
    # 1e5 rather than 1e6, so an untuned image env does not ask for 7 GB. Presets in conf/tuned/.
    name: str = "dqn"
    lr: float = 1e-4
    buffer_size: int = 100_000  # transitions, summed over envs
    learning_starts: int = 100  # env steps of uniform random actions before the first update
    batch_size: int = 32
    gamma: float = 0.99
    # target net: every `target_update_interval` env steps, target <- tau*online + (1-tau)*target
    # (tau = 1: the hard copy of Mnih et al.; tau < 1: Polyak averaging, Lillicrap et al. 2016)
    tau: float = 1.0
    target_update_interval: int = 10_000
    train_freq: int = 4  # env steps per vector env between update phases
    gradient_steps: int = 1  # gradient steps per update phase
    # epsilon decays linearly from initial to final over the first `exploration_fraction` of
    # the step budget, then stays at final
    exploration_fraction: float = 0.1
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    loss: str = "huber"  # huber (smooth L1, as in Mnih et al.'s error clipping) | mse
    max_grad_norm: float | None = 10.0  # global grad-norm clip; null disables
    double: bool = False  # Double DQN target (van Hasselt et al. 2016)
    n_step: int = 1  # n-step returns (Sutton & Barto sec. 7.1), formed by the buffer
    prioritized: bool = False  # proportional prioritized replay (Schaul et al. 2016)
    alpha: float = 0.6  # priority exponent: P(i) ~ (|delta_i| + eps)^alpha
    beta_start: float = 0.4  # importance-weight exponent, annealed linearly to 1 over training
    priority_eps: float = 1e-6
    # the replay buffer is saved in checkpoints (resume continues with the same data); turn it
    # off for huge buffers (a 1M-frame Atari buffer is about 7 GB)
    checkpoint_buffer: bool = True

    def __post_init__(self) -> None:
        for key in (
            "lr", "buffer_size", "batch_size", "target_update_interval", "train_freq",
            "gradient_steps",
        ):  # fmt: skip
            if getattr(self, key) <= 0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be positive")
        if self.n_step < 1:
            raise UserError(f"algo.n_step={self.n_step} must be at least 1")
        if self.learning_starts < 0:
            raise UserError(f"algo.learning_starts={self.learning_starts} must be >= 0")
        if not 0.0 < self.gamma <= 1.0:
            raise UserError(f"algo.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise UserError(f"algo.tau={self.tau} must be in (0, 1]")
        for key in ("exploration_initial_eps", "exploration_final_eps", "alpha", "beta_start"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise UserError(f"algo.{key}={getattr(self, key)} must be in [0, 1]")
        if not 0.0 < self.exploration_fraction <= 1.0:
            raise UserError(
                f"algo.exploration_fraction={self.exploration_fraction} must be in (0, 1]"
            )
        if self.loss not in LOSSES:
            raise UserError(f"algo.loss={self.loss} is not known; use huber or mse")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise UserError(
                f"algo.max_grad_norm={self.max_grad_norm} must be positive (null disables it)"
            )
        if self.priority_eps < 0:
            raise UserError(f"algo.priority_eps={self.priority_eps} must be >= 0")


# --- pure math ----------------------------------------------------------------------------------
def linear_epsilon(initial: float, final: float, fraction: float, progress: float) -> float:
    """eps(p) = initial + (final - initial) * min(1, p / fraction), p = steps / total_steps."""
    return initial + (final - initial) * min(1.0, progress / fraction)


def dqn_targets(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    next_q_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """TD targets y = R + D * Q_target(s', a*), with R, D the (n-step) reward sum and discount.

    vanilla (Mnih et al. 2015):          a* = argmax_a Q_target(s', a)
    double  (van Hasselt et al. 2016):   a* = argmax_a Q_online(s', a)   (pass next_q_online)

    D = gamma^m (1 - terminated) already encodes termination (no bootstrap) and truncation.
    """
    if next_q_online is None:
        next_values = next_q_target.max(dim=-1).values
    else:
        best = next_q_online.argmax(dim=-1, keepdim=True)
        next_values = next_q_target.gather(-1, best).squeeze(-1)
    return rewards + discounts * next_values


def td_loss(td: torch.Tensor, weights: torch.Tensor, kind: str) -> torch.Tensor:
    """L = mean_i w_i * l(delta_i), delta = Q(s,a) - y.

    huber: l(d) = d^2 / 2 if |d| <= 1 else |d| - 1/2  (Mnih et al. 2015 clip the error to [-1, 1])
    mse:   l(d) = d^2
    The importance weights w (prioritized replay, Schaul et al. 2016) correct the sampling bias.
    """
    zeros = torch.zeros_like(td)
    if kind == "huber":
        per_item = F.smooth_l1_loss(td, zeros, reduction="none", beta=1.0)
    elif kind == "mse":
        per_item = td.pow(2)
    else:
        raise ValueError(f"unknown loss {kind}")
    return (weights * per_item).mean()


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta_target <- tau * theta_online + (1 - tau) * theta_target (tau = 1: a hard copy)."""
    target_params: list[torch.Tensor] = list(target.parameters())
    online_params: list[torch.Tensor] = list(online.parameters())
    if tau >= 1.0:
        torch._foreach_copy_(target_params, online_params)
    else:
        torch._foreach_lerp_(target_params, online_params, tau)
    for t_buf, o_buf in zip(target.buffers(), online.buffers(), strict=True):
        t_buf.copy_(o_buf)


def returns_to_go(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """G_t = sum_{k=t}^{T-1} gamma^(k-t) r_k + gamma^(T-t) * bootstrap, for t = 0..T-1.

    Vectorized per chunk: inside a chunk G_i = (sum_{j>=i} gamma^j r_j) / gamma^i + carry terms;
    chunks are short enough that gamma^len stays far above float64 underflow.
    """
    r = np.asarray(rewards, dtype=np.float64)
    out = np.empty_like(r)
    chunk = len(r) if gamma >= 1.0 else max(1, int(-150.0 / math.log10(gamma)))
    carry = float(bootstrap)  # G at the start of the chunk after the current one
    end = len(r)
    while end > 0:
        start = max(0, end - chunk)
        seg = r[start:end]
        powers = gamma ** np.arange(len(seg), dtype=np.float64)
        tail = np.cumsum((powers * seg)[::-1])[::-1]  # sum_{j>=i} gamma^j r_j
        out[start:end] = tail / powers + gamma ** (len(seg) - np.arange(len(seg))) * carry
        carry = float(out[start])
        end = start
    return out


def q_bias_sum(
    q_pred: np.ndarray, rewards: np.ndarray, gamma: float, bootstrap: float = 0.0
) -> tuple[float, int]:
    """Overestimation of one finished episode (van Hasselt et al. 2016, sec. 3 and fig. 3):

    (sum over steps t with a prediction (finite q_pred) of Q(s_t, a_t) - G_t, number of such
    steps), G from :func:`returns_to_go`. Sums, so a log window averages over transitions.
    """
    known = np.isfinite(q_pred)
    if not known.any():
        return 0.0, 0
    returns = returns_to_go(rewards, gamma, bootstrap)
    return float((q_pred[known] - returns[known]).sum()), int(known.sum())


# --- the algorithm ------------------------------------------------------------------------------
class LossTerms(NamedTuple):
    loss: torch.Tensor  # mean_i w_i l(delta_i)
    td: torch.Tensor  # [B] delta = Q(s, a) - y
    q_pred: torch.Tensor  # [B] Q(s, a) of the replayed actions
    q_all: torch.Tensor  # [B, A] Q(s, .)


class DQN:
    @staticmethod
    def check_env(obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise UserError(
                f"algo=dqn needs a discrete action space, but the env has {action_space}; "
                "use algo=ppo for continuous actions"
            )

    def __init__(self, cfg: DQNConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env, device = ctx.env, ctx.device
        self.num_envs = env.num_envs
        assert isinstance(env.single_action_space, gym.spaces.Discrete)
        self.n_actions = int(env.single_action_space.n)
        obs_space = env.single_observation_space
        self.q_net = build_q_network(obs_space, self.n_actions, ctx.cfg.network).to(device)
        self.target_net = build_q_network(obs_space, self.n_actions, ctx.cfg.network).to(device)
        self.target_net.load_state_dict(self.q_net.state_dict())
        self.target_net.requires_grad_(False)
        # flat-buffer Adam (rltrain.core.optim): a handful of tensor ops per step, whatever the
        # number of layers, and no torch._dynamo import at start-up
        self.optimizer = Adam(self.q_net.parameters(), lr=cfg.lr)
        # Image stacks are stored one frame at a time (FrameReplayBuffer); n-step sums, PER and
        # per-env streams all live in the buffer.
        self.buffer = make_replay_buffer(
            obs_space, env.single_action_space, cfg.buffer_size, self.num_envs, device,
            n_step=cfg.n_step, gamma=cfg.gamma, prioritized=cfg.prioritized, alpha=cfg.alpha,
            frame_stack=is_image_space(obs_space), eps=cfg.priority_eps,
        )  # fmt: skip
        self.obs = env.reset(seed=ctx.cfg.seed)
        self.last_target_update = 0  # env step of the last target-update boundary handled
        self.updates = 0
        # updates begin once the env step passes this; a resume without a saved replay buffer
        # moves it learning_starts steps on, so the new buffer fills before it is replayed
        self.learning_starts_at = cfg.learning_starts
        self._env_index = np.arange(self.num_envs)
        # In-flight episode records for q_bias: Q(s_t, a_t) predicted when acting (NaN during
        # the random warm-up) and the training reward, [t, env]; grown by doubling.
        self._ep_q = np.full((1024, self.num_envs), np.nan)
        self._ep_r = np.zeros((1024, self.num_envs))
        self._ep_len = np.zeros(self.num_envs, dtype=np.int64)
        self._q_bias_sum, self._q_bias_count = 0.0, 0  # over transitions since the last log
        self._last_q: torch.Tensor | None = None
        self._last_adv: torch.Tensor | None = None

    # --- acting ---------------------------------------------------------------------------------
    def _to_tensor(self, obs: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.asarray(obs))
        if tensor.dtype == torch.float64:
            tensor = tensor.float()
        return tensor.to(self.ctx.device, non_blocking=True)

    def epsilon(self, step: int) -> float:
        cfg = self.cfg
        progress = min(1.0, step / max(1, self.ctx.cfg.total_steps))
        return linear_epsilon(
            cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_fraction,
            progress,
        )  # fmt: skip

    def _exploration_draws(self, count: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Per env: whether it explores (probability eps) and the uniform random action it takes
        if so. Drawn before any Q-values, so a step where every env explores needs none."""
        rng = self.ctx.rng
        explore = rng.random(count) < eps
        return explore, rng.integers(0, self.n_actions, size=count)

    def _epsilon_greedy(self, q_values: np.ndarray, eps: float) -> np.ndarray:
        """Per env: a uniform random action with probability eps, else argmax_a Q (vectorized)."""
        explore, random_actions = self._exploration_draws(len(q_values), eps)
        return np.where(explore, random_actions, q_values.argmax(axis=1))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        q_values = self.q_net(self._to_tensor(obs)).cpu().numpy()
        if deterministic:
            return q_values.argmax(axis=1)
        return self._epsilon_greedy(q_values, self.epsilon(self.ctx.step))

    @torch.no_grad()
    def _env_step(self, step: int) -> None:
        """Act in all envs at global env step `step`, store the transitions, track episodes."""
        if step < self.cfg.learning_starts:
            # replay warm-up with a uniform random policy (Mnih et al. 2015, "replay start")
            actions = self.ctx.rng.integers(0, self.n_actions, size=self.num_envs)
            q_taken = np.full(self.num_envs, np.nan)
        else:
            explore, random_actions = self._exploration_draws(self.num_envs, self.epsilon(step))
            if explore.all():
                # No greedy action to pick, so no forward pass (most steps early on with one env).
                # q_bias then averages over the transitions that had a prediction: a subset chosen
                # by the exploration coin, which does not depend on the state, so still unbiased.
                actions = random_actions
                q_taken = np.full(self.num_envs, np.nan)
            else:
                # the one host transfer per step: Q(s, .) of all envs (it carries the greedy action)
                q_values = self.q_net(self._to_tensor(self.obs)).cpu().numpy()
                actions = np.where(explore, random_actions, q_values.argmax(axis=1))
                q_taken = q_values[self._env_index, actions]
        tr = self.ctx.env.step(actions)
        self.buffer.add(self.obs, actions, tr.reward, tr.terminated, tr.truncated, tr.final_obs)
        self._track_episodes(q_taken, tr.reward, tr.terminated, tr.truncated, tr.final_obs)
        self.obs = tr.obs

    # --- q_bias bookkeeping ---------------------------------------------------------------------
    @torch.no_grad()
    def _track_episodes(
        self,
        q_taken: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: np.ndarray,
    ) -> None:
        if self._ep_len.max() >= len(self._ep_q):
            self._ep_q = np.concatenate([self._ep_q, np.full_like(self._ep_q, np.nan)])
            self._ep_r = np.concatenate([self._ep_r, np.zeros_like(self._ep_r)])
        self._ep_q[self._ep_len, self._env_index] = q_taken
        self._ep_r[self._ep_len, self._env_index] = reward
        self._ep_len += 1
        done = terminated | truncated
        if not done.any():
            return
        ended = np.flatnonzero(done)
        # a time limit is not the end of the MDP: bootstrap the tail with max_a Q(s_T, a)
        boot = np.zeros(self.num_envs)
        cut = ended[truncated[ended] & ~terminated[ended]]
        # (an episode with no prediction at all, e.g. during the warm-up, has no q_bias to give)
        predicted = np.isfinite(self._ep_q[: self._ep_len.max()]).any(axis=0)
        cut = cut[predicted[cut]]
        if cut.size:
            q_final = self.q_net(self._to_tensor(final_obs[cut]))
            boot[cut] = q_final.max(dim=-1).values.cpu().numpy()
        for e in ended:  # only the few envs whose episode ended this step
            length = int(self._ep_len[e])
            total, count = q_bias_sum(
                self._ep_q[:length, e], self._ep_r[:length, e], self.cfg.gamma, boot[e]
            )
            self._q_bias_sum += total
            self._q_bias_count += count
        self._ep_len[ended] = 0

    # --- learning -------------------------------------------------------------------------------
    def _sample(self) -> ReplaySample:
        if isinstance(self.buffer, PrioritizedReplay):
            # beta anneals linearly to 1 at the end of training (Schaul et al. 2016, sec. 3.4)
            beta = self.cfg.beta_start + (1.0 - self.cfg.beta_start) * self.ctx.progress
            return self.buffer.sample(self.cfg.batch_size, self.ctx.rng, beta)
        return self.buffer.sample(self.cfg.batch_size, self.ctx.rng)

    @torch.no_grad()
    def targets(self, batch: ReplaySample) -> torch.Tensor:
        """y = R + D * Q_target(s', a*), a* from the target net, or the online net if double."""
        next_q_target = self.target_net(batch.next_obs)
        next_q_online = self.q_net(batch.next_obs) if self.cfg.double else None
        return dqn_targets(batch.rewards, batch.discounts, next_q_target, next_q_online)

    def loss(self, batch: ReplaySample) -> LossTerms:
        """Importance-weighted TD loss of a replayed batch, with its parts for diagnostics."""
        targets = self.targets(batch)
        q_all = self.q_net(batch.obs)
        q_pred = q_all.gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
        td = q_pred - targets
        return LossTerms(td_loss(td, batch.weights, self.cfg.loss), td, q_pred, q_all)

    def update(self, batch: ReplaySample | None = None) -> torch.Tensor:
        """One gradient step on `batch` (sampled from replay when None); returns the loss."""
        cfg, rec = self.cfg, self.ctx.recorder
        if batch is None:
            batch = self._sample()
        loss, td, q_pred, q_all = self.loss(batch)

        self.optimizer.zero_grad()
        loss.backward()
        if cfg.max_grad_norm is not None:
            self.optimizer.clip_grad_norm(cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1

        td_abs = td.detach().abs()
        if isinstance(self.buffer, PrioritizedReplay):
            # new priorities p_i = (|delta_i| + eps)^alpha: needs the TD errors on the host
            self.buffer.update_priorities(batch.indices, td_abs.cpu().numpy())

        # Q, V = max_a Q and A = Q - V on the replayed states; tensors, averaged at log time
        q_all = q_all.detach()
        v = q_all.max(dim=-1, keepdim=True).values
        adv = q_all - v
        rec.scalar("losses/td_loss", loss.detach())
        rec.scalar("values/td_error", td_abs.mean())
        rec.scalar("values/q_mean", q_pred.detach().mean())
        rec.scalar("values/q_max", v.max())
        rec.scalar("values/v_mean", v.mean())
        rec.scalar("values/advantage_mean", adv.mean())
        rec.scalar("values/advantage_std", adv.std())
        self._last_q, self._last_adv = q_all, adv
        return loss.detach()

    def _maybe_update_target(self, step: int) -> None:
        """Apply the target updates due at env-step multiples of target_update_interval.

        The online net only changes in update phases, so k boundaries crossed since the last
        phase collapse into one update with tau_k = 1 - (1 - tau)^k (the same parameters).
        """
        interval = self.cfg.target_update_interval
        crossed = step // interval - self.last_target_update // interval
        if crossed > 0:
            tau = 1.0 - (1.0 - self.cfg.tau) ** crossed
            update_target(self.target_net, self.q_net, tau)
            self.last_target_update = step

    def iterate(self) -> int:
        cfg, ctx = self.cfg, self.ctx
        # train_freq vector steps, but never past the step budget
        remaining = math.ceil((ctx.cfg.total_steps - ctx.step) / self.num_envs)
        vector_steps = max(1, min(cfg.train_freq, remaining))
        for t in range(vector_steps):
            self._env_step(ctx.step + t * self.num_envs)
        consumed = vector_steps * self.num_envs
        now = ctx.step + consumed
        ctx.recorder.scalar("charts/epsilon", self.epsilon(now))
        if now > self.learning_starts_at:
            self._maybe_update_target(now)
            if isinstance(self.buffer, PrioritizedReplay):
                for _ in range(cfg.gradient_steps):
                    self.update()  # priorities change after every step: sample one at a time
            else:
                for batch in self._uniform_batches(cfg.gradient_steps):
                    self.update(batch)
        return consumed

    def _uniform_batches(self, count: int) -> Iterator[ReplaySample]:
        """`count` independent uniform minibatches, drawn in few buffer calls.

        Uniform draws do not depend on the updates in between, so one sample of k * batch_size
        split into k minibatches has the same distribution as k samples, with a k-th of the
        indexing overhead (chunks of at most 8192 transitions bound the memory).
        """
        assert not isinstance(self.buffer, PrioritizedReplay)
        size = self.cfg.batch_size
        per_call = max(1, min(count, 8192 // size))
        done = 0
        while done < count:
            k = min(per_call, count - done)
            big = self.buffer.sample(k * size, self.ctx.rng)
            for i in range(k):
                part = slice(i * size, (i + 1) * size)
                yield ReplaySample(
                    big.obs[part], big.actions[part], big.rewards[part], big.next_obs[part],
                    big.discounts[part], big.weights[part], big.indices[part],
                )  # fmt: skip
            done += k

    def diagnostics(self) -> None:
        # q_bias of the transitions of all episodes that ended in this log window
        if self._q_bias_count:
            self.ctx.recorder.scalar("values/q_bias", self._q_bias_sum / self._q_bias_count)
            self._q_bias_sum, self._q_bias_count = 0.0, 0
        if self._last_q is not None and self._last_adv is not None:
            self.ctx.recorder.histogram("values/q", self._last_q)
            self.ctx.recorder.histogram("values/advantage", self._last_adv)

    # --- checkpoint -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        longest = int(self._ep_len.max())
        state: dict[str, Any] = {
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "last_target_update": self.last_target_update,
            "updates": self.updates,
            "learning_starts_at": self.learning_starts_at,
            # what the envs show now, and the q_bias records of the episodes in flight: with the
            # envs' own state (saved by the loop) a resumed run continues them exactly
            "obs": torch.from_numpy(np.ascontiguousarray(self.obs)),
            "episodes": {
                "q": torch.from_numpy(self._ep_q[:longest].copy()),
                "r": torch.from_numpy(self._ep_r[:longest].copy()),
                "len": torch.from_numpy(self._ep_len.copy()),
                "bias_sum": self._q_bias_sum,
                "bias_count": self._q_bias_count,
            },
        }
        if self.cfg.checkpoint_buffer:
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_net.load_state_dict(state["q_net"])
        self.target_net.load_state_dict(state["target_net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.last_target_update = int(state["last_target_update"])
        self.updates = int(state["updates"])
        self.learning_starts_at = int(state["learning_starts_at"])
        continued = "obs" in state and envs_restored(self.ctx.env)
        if continued:
            self.obs = state["obs"].numpy()
            episodes = state["episodes"]
            longest = len(episodes["q"])
            while longest >= len(self._ep_q):  # same doubling as _track_episodes
                self._ep_q = np.concatenate([self._ep_q, np.full_like(self._ep_q, np.nan)])
                self._ep_r = np.concatenate([self._ep_r, np.zeros_like(self._ep_r)])
            self._ep_q[:longest] = episodes["q"].numpy()
            self._ep_r[:longest] = episodes["r"].numpy()
            self._ep_len[:] = episodes["len"].numpy()
            self._q_bias_sum = float(episodes["bias_sum"])
            self._q_bias_count = int(episodes["bias_count"])
        if "buffer" not in state:
            # algo.checkpoint_buffer=false: the policy acts on from where it was, and the updates
            # wait until the new buffer holds learning_starts transitions again
            self.learning_starts_at = self.ctx.step + self.cfg.learning_starts  # the resume step
            warn_stderr(
                "warning: the checkpoint holds no replay buffer (algo.checkpoint_buffer=false); "
                f"resuming with an empty replay buffer, updates resume after "
                f"{self.cfg.learning_starts:,} more steps (algo.learning_starts)"
            )
        else:
            self.buffer.load_state_dict(state["buffer"])
            if not continued:
                # The envs restart with fresh episodes (async sub-envs live in other processes):
                # close each env stream's newest transition as a time-limit cut, so no n-step
                # window runs into the new episode (it bootstraps from that transition's true
                # successor, which is stored).
                inner = (
                    self.buffer.buffer
                    if isinstance(self.buffer, PrioritizedReplay)
                    else self.buffer
                )
                if inner.steps_added > 0:
                    inner.truncated[(inner.steps_added - 1) % inner.capacity_per_env] = True

