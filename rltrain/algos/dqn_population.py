"""DQN for a population: the K seeds of one job trained as one batched program
(`num_seeds=K parallel_seeds=true`), each seed learning as the one-seed DQN of dqn.py would.

Seed k is a `DQNMember`, the one-seed `DQN` itself (built as its run builds it: torch seeded with
k, then the networks; its own replay buffer, its exploration and minibatch draws from its run's
numpy generator, its q_bias records, its checkpoint format), with its online and target networks
bound to row k of two [K, P] tensors (rltrain/algos/population.py's `RowLayout`). The population
does what batches across seeds:

- acting: one batched forward pass gives every seed's Q(s, .) for its envs (block k of one
  `BatchedCartPole`), and one step moves all K x num_envs envs;
- learning: gradient step i of the phase stacks each seed's i-th minibatch into [K, B] and runs
  the TD loss on batched matmuls, with the loss's gradient carried back through the MLP by hand
  (rltrain/networks/hand_backward.py's `mlp_backward`); one Adam over the [K, P] weights is K
  of them, and each seed's gradient is clipped by its own norm.

Uniform replay, MLP Q-networks without the dueling head (config validation says so).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rltrain import tags
from rltrain.algos.base import Context, obs_to_tensor
from rltrain.algos.dqn import DQN, dqn_targets, td_loss, td_loss_grad
from rltrain.algos.population import RowLayout, stack_rows
from rltrain.algos.value_estimates import greedy_values
from rltrain.blocks.optim import Adam
from rltrain.blocks.schedules import linear
from rltrain.config.algos import DQNConfig
from rltrain.envs.batched_cartpole import BatchedCartPole
from rltrain.networks.builders import MLP, QNetwork
from rltrain.networks.hand_backward import Layer, mlp_backward, mlp_forward

# what a DQN update records, in the order of the population's [8, K] statistics
UPDATE_TAGS = (
    tags.TD_LOSS, tags.GRAD_NORM, tags.TD_ERROR, tags.Q_MEAN, tags.Q_MAX, tags.V_MEAN,
    tags.ADVANTAGE_MEAN, tags.ADVANTAGE_STD,
)  # fmt: skip


class DQNMember(DQN):
    """Seed k of a DQN population as the trainer loop of its own run sees it. Its networks are
    views into the population's rows; its optimizer state is the population's row k (the Adam
    that `DQN.__init__` builds is replaced before any step)."""

    population: DQNPopulation
    k: int

    def iterate(self) -> int:
        raise NotImplementedError("a population member is stepped by its population")

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for name in ("q_net", "target_net"):  # copies: a view would save every seed's storage
            state[name] = {key: t.clone() for key, t in state[name].items()}
        population = self.population
        state["optimizer"] = population.optimizer.row_state_dict(self.k, population.K)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # weights in place, into this seed's rows
        population = self.population
        population.optimizer.load_row_state_dict(state["optimizer"], self.k, population.K)


def q_layers(net: QNetwork) -> list[Layer]:
    """The (weight, bias) pairs of a plain MLP Q-network: trunk layers, then the Q head."""
    assert isinstance(net.trunk, MLP) and not net.dueling, "validation admits plain MLPs"
    return [*net.trunk.layer_parameters(), (net.q_head.weight, net.q_head.bias)]


class DQNPopulation:
    """K DQN agents on K blocks of one batched env; `iterate` is one DQN iteration of all."""

    def __init__(
        self,
        cfg: DQNConfig,
        contexts: list[Context],
        envs: BatchedCartPole,
        seeds: list[int],
    ) -> None:
        self.cfg, self.contexts, self.envs = cfg, contexts, envs
        self.K, self.num_envs = len(seeds), envs.block_size
        self.device = contexts[0].device
        self.members: list[DQNMember] = []
        self.generators: list[torch.Generator] = []
        for k, (seed, ctx) in enumerate(zip(seeds, contexts, strict=True)):
            torch.manual_seed(seed)  # as the one-seed run has seeded torch before it builds
            member = DQNMember(cfg, ctx)  # resets its block of the envs with its seed
            member.population, member.k = self, k
            self.members.append(member)
            # DQN draws nothing from torch after building: the stream is saved as a run saves it
            generator = torch.Generator()
            generator.set_state(torch.get_rng_state())
            self.generators.append(generator)
        self.weights = torch.nn.Parameter(stack_rows([m.q_net for m in self.members]))
        # The optimizer moves the weights into its flat buffer; every view is taken after that.
        self.optimizer = Adam([self.weights], lr=cfg.lr)
        self.target_weights = stack_rows([m.target_net for m in self.members])
        online = RowLayout([m.q_net for m in self.members], self.weights)
        target = RowLayout([m.target_net for m in self.members], self.target_weights)
        first = self.members[0]
        self.online = online.stacks(q_layers(first.q_net))
        self.target = target.stacks(q_layers(first.target_net))
        assert isinstance(first.q_net.trunk, MLP)
        self.activation = first.q_net.trunk.activation_name
        self._env_index = np.arange(self.num_envs)

    # --- acting ---------------------------------------------------------------------------------
    def _q_values(self) -> np.ndarray:
        """[K, num_envs, A]: every seed's Q(s, .) of its own envs, one batched forward pass."""
        obs = np.stack([m.obs for m in self.members])
        x = obs_to_tensor(obs, self.device)
        return mlp_forward(x, self.online, self.activation)[1].cpu().numpy()  # type: ignore[no-any-return]

    @torch.no_grad()
    def _env_step(self, step: int) -> None:
        """`DQN._env_step` for every seed at global env step `step`: each seed draws from its own
        generator, in the order its one-seed run draws; one batched forward pass and one step of
        all envs serve all of them."""
        cfg, n = self.cfg, self.num_envs
        nan = np.full(n, np.nan)
        actions, taken = [], []
        greedy: list[tuple[int, np.ndarray, np.ndarray]] = []
        for k, member in enumerate(self.members):
            if step < cfg.learning_starts:  # the replay warm-up's uniform random policy
                actions.append(member.ctx.rng.integers(0, member.n_actions, size=n))
                taken.append(nan)
            else:
                explore, random_actions = member._exploration_draws(n, member.epsilon(step))
                actions.append(random_actions)
                taken.append(nan)  # as the one-seed run: no prediction where every env explores
                if not explore.all():
                    greedy.append((k, explore, random_actions))
        if greedy:
            q_values = self._q_values()
            for k, explore, random_actions in greedy:
                actions[k] = np.where(explore, random_actions, q_values[k].argmax(axis=1))
                taken[k] = q_values[k][self._env_index, actions[k]]
        tr = self.envs.step(np.concatenate(actions))
        for k, member in enumerate(self.members):
            rows = slice(k * n, (k + 1) * n)
            reward, terminated, truncated = tr.reward[rows], tr.terminated[rows], tr.truncated[rows]
            final_obs = tr.final_obs[rows]
            member.buffer.add(member.obs, actions[k], reward, terminated, truncated, final_obs)
            member._track_episodes(taken[k], reward, terminated, truncated, final_obs)
            member.obs = tr.obs[rows]

    # --- one iteration --------------------------------------------------------------------------
    def iterate(self) -> int:
        """`DQN.iterate` of every seed; returns each seed's env steps."""
        cfg, first = self.cfg, self.members[0]
        ctx = first.ctx  # every seed has taken the same steps and shares the schedules
        remaining = -(-(ctx.cfg.total_steps - ctx.step) // self.num_envs)
        vector_steps = max(1, min(cfg.train_freq, remaining))
        for t in range(vector_steps):
            self._env_step(ctx.step + t * self.num_envs)
        consumed = vector_steps * self.num_envs
        now = ctx.step + consumed
        for member in self.members:
            member.ctx.recorder.scalar(tags.EPSILON, member.epsilon(now))
        if now > first.learning_starts_at:  # the seeds resume together: the same for all
            for member in self.members:
                member._maybe_update_target(now)  # writes into the target rows
            if cfg.anneal_lr:
                self.optimizer.param_groups[0]["lr"] = linear(cfg.lr, 0.0, ctx.progress)
            for member in self.members:
                member.ctx.recorder.scalar(tags.LEARNING_RATE, self.optimizer.lr)
            self.update_phase()
        return consumed

    def update_phase(self) -> None:
        """`gradient_steps` updates of every seed, step i on each seed's i-th minibatch drawn as
        its one-seed run draws it; each seed records the means of its updates' statistics (the
        one-seed run records every update, and the log window averages them alike)."""
        count = self.cfg.gradient_steps
        draws = [member._uniform_batches(count) for member in self.members]
        stats = torch.zeros(len(UPDATE_TAGS), self.K, device=self.device)
        last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        for batches in zip(*draws, strict=True):
            obs, actions, rewards, next_obs, discounts, weights = (
                torch.stack([getattr(b, name) for b in batches])
                for name in ("obs", "actions", "rewards", "next_obs", "discounts", "weights")
            )
            step_stats, last = self.update(obs, actions, rewards, next_obs, discounts, weights)
            stats += step_stats
        stats /= count
        assert last is not None
        q_all, v, adv = last
        for k, member in enumerate(self.members):
            member.updates += count
            for tag, value in zip(UPDATE_TAGS, stats[:, k], strict=True):
                member.ctx.recorder.scalar(tag, value)
            member._last = q_all[k], v[k], adv[k]

    @torch.no_grad()
    def update(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        discounts: torch.Tensor,
        weights: torch.Tensor,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One gradient step of every seed on [K, B] minibatches: `DQN.update`'s loss, its
        gradient by hand. Returns the [8, K] statistics (`UPDATE_TAGS`) and (Q, V, A)."""
        cfg, act = self.cfg, self.activation
        next_q_target = mlp_forward(next_obs, self.target, act)[1]
        next_q_online = mlp_forward(next_obs, self.online, act)[1] if cfg.double else None
        targets = dqn_targets(rewards, discounts, next_q_target, next_q_online)
        inputs, q_all = mlp_forward(obs, self.online, act)
        index = actions.long().unsqueeze(-1)
        q_pred = q_all.gather(-1, index).squeeze(-1)
        td = q_pred - targets
        loss = td_loss(td, weights, cfg.loss)
        # dL/dQ(s, .) is dL/d delta at the replayed action, zero at the others
        grad_q = torch.zeros_like(q_all).scatter_(-1, index, td_loss_grad(td, weights, cfg.loss)
                                                  .unsqueeze(-1))  # fmt: skip
        mlp_backward(grad_q, inputs, self.online, act)
        if cfg.max_grad_norm is not None:
            grad_norm = self.optimizer.clip_grad_norm_rows(cfg.max_grad_norm, self.K)
        else:
            grad_norm = torch.linalg.vector_norm(self.optimizer.flat_grad.view(self.K, -1), dim=1)
        self.optimizer.step()
        v, adv = greedy_values(q_all)
        v_rows, adv_rows = v.flatten(1), adv.flatten(1)  # per seed, as the one-seed run's means
        stats = torch.stack([
            loss, grad_norm, td.abs().mean(-1), q_pred.mean(-1), v_rows.max(-1).values,
            v_rows.mean(-1), adv_rows.mean(-1), adv_rows.std(-1),
        ])  # fmt: skip
        return stats, (q_all, v, adv)
