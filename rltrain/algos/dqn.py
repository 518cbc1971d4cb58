"""DQN (Mnih et al. 2015) with Double, dueling, n-step and prioritized-replay flags.

Read top to bottom: the pure math (TD targets, the loss), then the algorithm:
`iterate()` acts `train_freq` steps in every env (epsilon-greedy, batched over envs), stores the
transitions in replay, then runs `gradient_steps` updates on sampled minibatches.

Flags on the same algorithm (Rainbow's ablation components, Hessel et al. 2018):
- `algo.double`: Double DQN target (van Hasselt et al. 2016, arXiv:1509.06461): the online net
  picks the argmax action at s', the target net values it; this removes the max operator's
  upward bias that the vanilla target max_a Q_target(s', a) has under noisy estimates.
- `network.dueling`: Q = V + A - mean_a A (Wang et al. 2016), built by `QNetwork`.
- `algo.n_steps`: n-step returns, formed by the replay buffer at sample time.
- `algo.prioritized`: proportional prioritized replay (Schaul et al. 2016) with importance
  weights in the loss and beta annealed linearly from `priority_beta_start` to 1 over the budget.

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
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from rltrain import tags
from rltrain.algos.base import (
    REPLAY_STATE,
    Algorithm,
    Context,
    check_iteration_fits,
    obs_to_tensor,
)
from rltrain.algos.off_policy import QBiasTracker, resume_without_replay, update_target
from rltrain.algos.value_estimates import greedy_values, record_histograms
from rltrain.blocks.buffers import PrioritizedReplay, ReplaySample, make_replay_buffer
from rltrain.blocks.optim import Adam
from rltrain.blocks.schedules import budget_used, epsilon_at, linear
from rltrain.config.algos import DQNConfig
from rltrain.envs.vec import envs_restored
from rltrain.errors import UserError
from rltrain.networks.builders import build_q_network, is_image_space
from rltrain.networks.policy import GreedyQ


# --- pure math ----------------------------------------------------------------------------------
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
    """L = mean_i w_i * l(delta_i), delta = Q(s,a) - y, the mean over the last axis (a
    population's [K, B] gives one loss per seed).

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
    return (weights * per_item).mean(-1)


def td_loss_grad(td: torch.Tensor, weights: torch.Tensor, kind: str) -> torch.Tensor:
    """dL/d delta_i of `td_loss` over the last axis of B items: w_i l'(delta_i) / B, with

    huber: l'(d) = clamp(d, -1, 1);   mse: l'(d) = 2 d.
    """
    if kind == "huber":
        slope = td.clamp(-1.0, 1.0)
    elif kind == "mse":
        slope = 2.0 * td
    else:
        raise ValueError(f"unknown loss {kind}")
    return weights * slope / td.shape[-1]


# --- the algorithm ------------------------------------------------------------------------------
class LossTerms(NamedTuple):
    loss: torch.Tensor  # mean_i w_i l(delta_i)
    td: torch.Tensor  # [B] delta = Q(s, a) - y
    q_pred: torch.Tensor  # [B] Q(s, a) of the replayed actions
    q_all: torch.Tensor  # [B, A] Q(s, .)


class DQN(Algorithm):
    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise UserError(
                f"algo=dqn needs a discrete action space, but the env has {action_space}; "
                "use algo=ppo for continuous actions"
            )

    def __init__(self, cfg: DQNConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env, device = ctx.env, ctx.device
        self.num_envs = env.num_envs
        check_iteration_fits(ctx, "dqn", self.num_envs, "env.num_envs")
        if ctx.run_dir is not None and cfg.learning_starts >= ctx.cfg.total_steps:
            raise UserError(
                f"algo.learning_starts={cfg.learning_starts:,} is not below total_steps="
                f"{ctx.cfg.total_steps:,}: no update would ever happen; lower algo.learning_starts "
                "or raise total_steps"
            )
        assert isinstance(env.single_action_space, gym.spaces.Discrete)
        self.n_actions = int(env.single_action_space.n)
        obs_space = env.single_observation_space
        self.q_net = build_q_network(obs_space, self.n_actions, ctx.cfg.network).to(device)
        self.target_net = build_q_network(obs_space, self.n_actions, ctx.cfg.network).to(device)
        self.target_net.load_state_dict(self.q_net.state_dict())
        self.target_net.requires_grad_(False)
        # flat-buffer Adam (rltrain.blocks.optim): a handful of tensor ops per step, whatever the
        # number of layers, and no torch._dynamo import at start-up
        self.optimizer = Adam(self.q_net.parameters(), lr=cfg.lr)
        # Image stacks are stored one frame at a time (FrameReplayBuffer); n-step sums, PER and
        # per-env streams all live in the buffer.
        self.buffer = make_replay_buffer(
            obs_space, env.single_action_space, cfg.buffer_size, self.num_envs, device,
            n_steps=cfg.n_steps, gamma=cfg.gamma, prioritized=cfg.prioritized,
            alpha=cfg.priority_alpha, frame_stack=is_image_space(obs_space), eps=cfg.priority_eps,
        )  # fmt: skip
        self.obs = env.reset(seed=ctx.cfg.seed)
        self.last_target_update = 0  # env step of the last target-update boundary handled
        self.updates = 0
        # updates begin once the env step passes this; a resume without a saved replay buffer
        # moves it learning_starts steps on, so the new buffer fills before it is replayed
        self.learning_starts_at = cfg.learning_starts
        self._env_index = np.arange(self.num_envs)
        # values/q_bias: Q(s_t, a_t) predicted when acting (NaN during the random warm-up) against
        # the discounted return that followed
        self.q_bias = QBiasTracker(self.num_envs, cfg.gamma)
        # Q, V and A of the latest minibatch, for the histograms
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # --- acting ---------------------------------------------------------------------------------
    def epsilon(self, step: int) -> float:
        """Linear from epsilon_start to epsilon_end over the first epsilon_fraction of the
        budget (Mnih et al. 2015), then constant."""
        cfg = self.cfg
        return epsilon_at(
            budget_used(step, self.ctx.cfg.total_steps), cfg.epsilon_start, cfg.epsilon_end,
            cfg.epsilon_fraction, "linear",
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
        q_values = self.q_net(obs_to_tensor(obs, self.ctx.device)).cpu().numpy()
        if deterministic:
            return q_values.argmax(axis=1)
        return self._epsilon_greedy(q_values, self.epsilon(self.ctx.step))

    @torch.no_grad()
    def action_values(self, obs: np.ndarray) -> np.ndarray | None:
        return self.q_net(obs_to_tensor(obs, self.ctx.device)).cpu().numpy()  # type: ignore[no-any-return]

    def policy_module(self) -> torch.nn.Module | None:
        return GreedyQ(self.q_net)

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
                q_values = self.q_net(obs_to_tensor(self.obs, self.ctx.device)).cpu().numpy()
                actions = np.where(explore, random_actions, q_values.argmax(axis=1))
                q_taken = q_values[self._env_index, actions]
        tr = self.ctx.env.step(actions)
        self.buffer.add(self.obs, actions, tr.reward, tr.terminated, tr.truncated, tr.final_obs)
        self._track_episodes(q_taken, tr.reward, tr.terminated, tr.truncated, tr.final_obs)
        self.obs = tr.obs

    @torch.no_grad()
    def _track_episodes(
        self,
        q_taken: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: np.ndarray,
    ) -> None:
        def final_value(rows: np.ndarray) -> np.ndarray:  # max_a Q(s_T, a) of the online net
            q_final = self.q_net(obs_to_tensor(final_obs[rows], self.ctx.device))
            return q_final.max(dim=-1).values.cpu().numpy()  # type: ignore[no-any-return]

        self.q_bias.step(q_taken, reward, terminated, truncated, final_value)

    # --- learning -------------------------------------------------------------------------------
    def _sample(self) -> ReplaySample:
        if isinstance(self.buffer, PrioritizedReplay):
            # beta anneals linearly to 1 at the end of training (Schaul et al. 2016, sec. 3.4)
            beta = linear(self.cfg.priority_beta_start, 1.0, self.ctx.progress)
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
            grad_norm = self.optimizer.clip_grad_norm(cfg.max_grad_norm)
        else:
            grad_norm = self.optimizer.grad_norm()
        self.optimizer.step()
        self.updates += 1

        td_abs = td.detach().abs()
        if isinstance(self.buffer, PrioritizedReplay):
            # new priorities p_i = (|delta_i| + eps)^alpha: needs the TD errors on the host
            self.buffer.update_priorities(batch.indices, td_abs.cpu().numpy())

        # Q, V = max_a Q and A = Q - V on the replayed states; tensors, averaged at log time
        q_all = q_all.detach()
        v, adv = greedy_values(q_all)
        rec.scalar(tags.TD_LOSS, loss.detach())
        rec.scalar(tags.GRAD_NORM, grad_norm)
        rec.scalar(tags.TD_ERROR, td_abs.mean())
        rec.scalar(tags.Q_MEAN, q_pred.detach().mean())
        rec.scalar(tags.Q_MAX, v.max())
        rec.scalar(tags.V_MEAN, v.mean())
        rec.scalar(tags.ADVANTAGE_MEAN, adv.mean())
        rec.scalar(tags.ADVANTAGE_STD, adv.std())
        self._last = q_all, v, adv
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
        ctx.recorder.scalar(tags.EPSILON, self.epsilon(now))
        if now > self.learning_starts_at:
            self._maybe_update_target(now)
            if cfg.anneal_lr:  # lr (1 - p), p = the budget used when this iteration began
                self.optimizer.param_groups[0]["lr"] = linear(cfg.lr, 0.0, ctx.progress)
            ctx.recorder.scalar(tags.LEARNING_RATE, self.optimizer.lr)
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
        q_bias = self.q_bias.pop()
        if q_bias is not None:
            self.ctx.recorder.scalar(tags.Q_BIAS, q_bias)
        if self._last is not None:
            q, v, adv = self._last
            record_histograms(self.ctx.recorder, q=q, v=v, advantage=adv)

    # --- checkpoint -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
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
            "episodes": self.q_bias.state_dict(),
        }
        if self.cfg.checkpoint_buffer:
            state[REPLAY_STATE] = self.buffer.state_dict()
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
            self.q_bias.load_state_dict(state["episodes"])
        if REPLAY_STATE not in state:
            self.learning_starts_at = resume_without_replay(
                self.ctx, self.cfg.learning_starts, self.learning_starts_at
            )
        else:
            self.buffer.load_state_dict(state[REPLAY_STATE])
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

