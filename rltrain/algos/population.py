"""The K seeds of one job trained as one batched program (`num_seeds=K parallel_seeds=true`):
what the population trainers of the actor-critic family share. The update of each is in its own
file, beside its one-seed algorithm's: rltrain/algos/ppo_population.py, a2c_population.py.

Seed k is the one-seed run with seed k: its network initialised as the run initialises it (torch
seeded with k, then `build_actor_critic`), its envs (block k of one `BatchedCartPole` of
K x num_envs envs) seeded as the run seeds them, and its action samples (and PPO's minibatch
orders) drawn from a torch generator that starts where the run's global generator stands after
building the network. The weights of all K live in one [K, P] tensor whose row k is seed k's
parameters in the order a one-seed network lists them, so that

- the forward pass and the hand-written backward (rltrain/networks/hand_backward.py) are batched
  matmuls over [K, out, in] views of it: seed k's rows only meet seed k's weights;
- one Adam (or RMSprop) over it is K of them (both are elementwise, and the seeds step together);
- what is not elementwise is per seed (per row): the losses' means (the pure loss functions
  reduce over the last axis of [K, B]), advantage normalisation, gradient-norm clipping, the
  minibatch permutation.

Every seed also keeps an ordinary `ActorCritic` whose parameters are views into its row: it acts
in evaluation, and its state dict and the optimizer's row are seed k's checkpoint in the format of
a one-seed run, so `rltrain eval` and `rltrain resume` take `<job>/seed_<s>` as an ordinary run.
The rollout (`RolloutCollector`) and GAE are the one-seed code over K x num_envs envs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltrain import tags
from rltrain.algos.actor_critic import (
    ActorCriticInference,
    Rollout,
    RolloutCollector,
    record_histograms,
    record_losses,
    record_values,
    to_env_actions,
)
from rltrain.algos.base import Algorithm, Context, obs_to_tensor
from rltrain.blocks import random_state
from rltrain.blocks.optim import FlatOptimizer
from rltrain.config.algos import A2CConfig, PPOConfig
from rltrain.envs.batched_cartpole import BatchedCartPole
from rltrain.networks import build_actor_critic
from rltrain.networks import distributions as D
from rltrain.networks.builders import ActorCritic
from rltrain.networks.hand_backward import HandPath, Layer, mlp_forward, towers_of


def stack_rows(nets: Sequence[nn.Module]) -> torch.Tensor:
    """[K, P]: row k is network k's parameters, flattened in the order it lists them."""
    return torch.stack([
        torch.cat([p.detach().flatten() for p in net.parameters()]) for net in nets
    ])  # fmt: skip


class RowLayout:
    """K networks of one architecture bound to the rows of one [K, P] tensor: each network's
    parameters become views into its row (so its forward pass, state dict and export are that
    seed's own), and `stacks` gives [K, ...] views of a layer's rows for the batched pass."""

    def __init__(self, nets: Sequence[nn.Module], weights: torch.Tensor) -> None:
        self.K, self.weights = len(nets), weights
        first = list(nets[0].parameters())
        self._slices: dict[int, tuple[int, int]] = {}
        offset = 0
        for p in first:
            self._slices[id(p)] = (offset, p.numel())
            offset += p.numel()
        for row, net in enumerate(nets):
            for mine, p in zip(net.parameters(), first, strict=True):
                start, n = self._slices[id(p)]
                mine.data = weights.data[row, start : start + n].view_as(mine)

    def stacks(self, layers: list[Layer]) -> list[Layer]:
        """[K, ...] views of the rows of each (weight, bias) of the first network, with views of
        the gradient rows as their `.grad` where the weights have a gradient."""
        stacked = []
        grad = self.weights.grad
        for pair in layers:
            views = []
            for p in pair:
                start, n = self._slices[id(p)]
                view = self.weights.data[:, start : start + n].view(self.K, *p.shape)
                if grad is not None:
                    view.grad = grad[:, start : start + n].view(self.K, *p.shape)
                views.append(view)
            stacked.append((views[0], views[1]))
        return stacked


class ActorCriticPopulation:
    """K actor-critic agents on K blocks of one batched env; `iterate` is one rollout and update
    of all (`update`, each algorithm's own)."""

    def __init__(
        self,
        cfg: PPOConfig | A2CConfig,
        contexts: list[Context],
        envs: BatchedCartPole,
        seeds: list[int],
    ) -> None:
        self.cfg, self.contexts, self.envs = cfg, contexts, envs
        self.K, self.num_envs = len(seeds), envs.block_size
        device = self.device = contexts[0].device
        self.nets: list[ActorCritic] = []
        self.generators: list[torch.Generator] = []
        for seed in seeds:
            torch.manual_seed(seed)  # as the one-seed run has seeded torch before it builds
            net = build_actor_critic(
                envs.single_observation_space, envs.single_action_space, contexts[0].cfg.network
            ).to(device)
            self.nets.append(net)
            self.generators.append(_continue_stream(seed, device))
        self.weights = nn.Parameter(stack_rows(self.nets))
        # The optimizer moves the weights into its flat buffer; every view is taken after that.
        self.optimizer = self.make_optimizer([self.weights])
        self.layout = RowLayout(self.nets, self.weights)
        towers = towers_of(self.nets[0])
        assert towers is not None, "config validation admits two-tower categorical MLPs only"
        actor, critic, activation = towers
        self.actor, self.critic = self.layout.stacks(actor), self.layout.stacks(critic)
        self.activation = activation
        self.gradients = HandPath.over((self.actor, self.critic, activation))
        action_count = int(envs.single_action_space.n)  # type: ignore[attr-defined]
        self._uniforms = torch.empty(self.K, self.num_envs, action_count, device=device)
        self.collector = RolloutCollector(
            envs, cfg.n_steps, device, envs.reset(seed=seeds), whole_steps=True
        )
        self.members = [PopulationMember(self, k, ctx) for k, ctx in enumerate(contexts)]

    # --- the rollout's policy: rows of all K x num_envs envs, block k = seed k -------------------
    def _by_seed(self, obs: torch.Tensor) -> torch.Tensor:
        """[M x K x n, ...] observations (M whole steps of all envs) as [K, M x n, ...]."""
        x = obs.view(-1, self.K, self.num_envs, *obs.shape[1:]).transpose(0, 1)
        return x.reshape(self.K, -1, *obs.shape[1:])

    def _by_env(self, values: torch.Tensor) -> torch.Tensor:
        """The inverse of `_by_seed` for one number per row: [K, M x n] to [M x K x n]."""
        return values.view(self.K, -1, self.num_envs).transpose(0, 1).reshape(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self._by_seed(obs)
        logits = mlp_forward(x, self.actor, self.activation)[1]
        for uniforms, generator in zip(self._uniforms, self.generators, strict=True):
            torch.rand(uniforms.shape, generator=generator, out=uniforms)  # seed k's own stream
        actions = D.categorical_sample_from_uniform(logits, self._uniforms)
        log_probs = D.categorical_log_prob(logits, actions)
        values = mlp_forward(x, self.critic, self.activation)[1].squeeze(-1)
        return self._by_env(actions), self._by_env(log_probs), self._by_env(values)

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self._by_env(mlp_forward(self._by_seed(obs), self.critic, self.activation)[1])

    # --- one iteration ------------------------------------------------------------------------
    def iterate(self) -> int:
        """One rollout of every seed and its update; returns each seed's env steps."""
        self.update(self.collector.collect(self, self.cfg.gamma, self.cfg.gae_lambda))
        return self.cfg.n_steps * self.num_envs

    def _seed_major(self, x: torch.Tensor) -> torch.Tensor:
        """[T, K x n, ...] rollout rows as [K, T x n, ...]: each seed's rows in the order a
        one-seed run flattens its [T, n] rollout (time-major)."""
        T = x.shape[0]
        x = x.view(T, self.K, self.num_envs, *x.shape[2:]).transpose(0, 1)
        return x.reshape(self.K, T * self.num_envs, *x.shape[3:])

    def make_optimizer(self, params: list[nn.Parameter]) -> FlatOptimizer:
        """The one-seed algorithm's optimizer, over the [K, P] weights."""
        raise NotImplementedError

    def update(self, rollout: Rollout) -> None:
        raise NotImplementedError


class PopulationMember(ActorCriticInference, Algorithm):
    """Seed k of a population as the trainer loop of its own run sees it: its network, its
    logging and its checkpoint, in a one-seed PPO run's format. The population iterates."""

    def __init__(self, population: ActorCriticPopulation, k: int, ctx: Context) -> None:
        self.population, self.k, self.ctx = population, k, ctx
        self.net = population.nets[k]
        self.action_space = population.envs.single_action_space
        self.rows = slice(k * population.num_envs, (k + 1) * population.num_envs)
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        return None  # config validation admits CartPole-v1 only

    def iterate(self) -> int:
        raise NotImplementedError("a population member is stepped by its population")

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _, _ = self.net.act(obs_to_tensor(obs, self.ctx.device), deterministic)
        return to_env_actions(actions, self.action_space)

    def record_update(
        self,
        stats: torch.Tensor,
        extra_tags: tuple[str, ...],
        lr: float,
        estimates: tuple[torch.Tensor, ...],
    ) -> None:
        """What the one-seed algorithm's update records, from this seed's means over the update's
        gradient steps: policy loss, value loss, entropy, then one value per `extra_tags`."""
        rec = self.ctx.recorder
        policy_loss, value_loss, entropy, *rest = stats.unbind()
        record_losses(rec, policy_loss, value_loss, entropy)
        for tag, value in zip(extra_tags, rest, strict=True):
            rec.scalar(tag, value)
        rec.scalar(tags.LEARNING_RATE, lr)
        values, advantages, returns = estimates
        record_values(rec, values, advantages, returns)
        self._last = values, advantages, returns

    def diagnostics(self) -> None:
        if self._last is not None:
            record_histograms(self.ctx.recorder, *self._last)

    def state_dict(self) -> dict[str, Any]:
        population = self.population
        return {  # copies: a view would save the storage of every seed's weights
            "net": {name: t.clone() for name, t in self.net.state_dict().items()},
            "optimizer": population.optimizer.row_state_dict(self.k, population.K),
            "obs": torch.from_numpy(population.collector.obs[self.rows].copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        population = self.population
        self.net.load_state_dict(state["net"])  # in place: into this seed's row
        population.optimizer.load_row_state_dict(state["optimizer"], self.k, population.K)
        population.collector.obs[self.rows] = state["obs"].numpy()


def _continue_stream(seed: int, device: torch.device) -> torch.Generator:
    """A generator where the one-seed run's global torch generator stands once its network is
    built: on the CPU the global state itself (network init drew from it), on a GPU a fresh one
    seeded alike (the init drew from the CPU's)."""
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    else:
        generator.manual_seed(seed)
    return generator


class SeedStreams:
    """Seed k's random streams for its checkpoint, in a one-seed run's format: its generator
    as the torch state (a one-seed resume continues it as the global one); python's and numpy's
    global states as they are (PPO draws from neither)."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state(self) -> dict[str, Any]:
        return {**random_state.rng_state(), "torch": self.generator.get_state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["torch"])
