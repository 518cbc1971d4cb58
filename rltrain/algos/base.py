"""What every algorithm gets (Context) and what the runner and the commands ask of it (Algorithm).

An algorithm class subclasses `Algorithm`: the methods with `...` bodies are required (mypy refuses
to instantiate a class that lacks one), the others are optional hooks whose defaults here say what
"not used" means. The runner calls nothing that is not declared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.blocks.schedules import budget_used
from rltrain.config.schema import Config
from rltrain.envs.vec import Episodes, VecEnv
from rltrain.errors import UserError
from rltrain.logging import Recorder

# The key of an algorithm's state that holds its replay buffer (DQN, SAC, TD3, DDPG). Only a
# training resume needs it: the loop leaves it out of best.pt and evaluation does not load it.
REPLAY_STATE = "buffer"


@dataclass
class Context:
    """Shared plumbing handed to an algorithm; the loop advances `step` before each iterate()."""

    cfg: Config
    env: VecEnv
    device: torch.device
    recorder: Recorder
    rng: np.random.Generator  # the algorithm's numpy randomness (exploration, sampling)
    run_dir: Path | None  # None when the agent is built for evaluation, not training
    step: int = 0  # environment steps so far, summed over envs

    @property
    def progress(self) -> float:
        """Fraction of the step budget used, in [0, 1]: drives linear schedules."""
        return budget_used(self.step, self.cfg.total_steps)


def check_iteration_fits(ctx: Context, algo: str, steps: int, made_of: str) -> None:
    """A run trains at most `total_steps` plus one iteration: an iteration larger than the whole
    budget is refused (one line naming the knobs), not silently run. `made_of` says what an
    iteration is, e.g. "algo.n_steps x env.num_envs". Building for evaluation is not checked."""
    budget = ctx.cfg.total_steps
    if ctx.run_dir is not None and steps > budget:
        raise UserError(
            f"one iteration of algo={algo} is {made_of} = {steps:,} env steps, more than "
            f"total_steps={budget:,}: lower {made_of.replace(' x ', ' or ')} or raise total_steps"
        )


def obs_to_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    """Numpy observations to the device; float64 (classic control) becomes float32."""
    tensor = torch.from_numpy(np.asarray(obs))
    if tensor.dtype == torch.float64:
        tensor = tensor.float()
    return tensor.to(device, non_blocking=True)


class Algorithm(Protocol):
    """One class per algorithm; the runner owns cadence, evaluation, checkpoints and logging."""

    # Planners (value / policy iteration) end by convergence: the loop stops once this is true.
    finished: bool = False
    # the mean Q, V and A scalars it logs, drawn together on the Custom Scalars chart
    value_tags: tuple[str, ...] = tags.VALUE_MEAN_TAGS

    def __init__(self, cfg: Any, ctx: Context) -> None: ...

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        """Refuse an env the algorithm cannot handle (one-line UserError), before it is built."""

    def iterate(self) -> int:
        """One unit of work (a rollout and its update, or env step(s) and gradient steps).

        Returns the environment steps it consumed, summed over vectorized envs.
        """
        ...

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """Batched actions for evaluation (greedy / mean action when deterministic)."""
        ...

    def diagnostics(self) -> None:
        """Record log-time diagnostics (histograms, images, oracle distances) before a flush."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimizers, buffers, counters (tensors/plain)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def pop_episodes(self) -> Episodes | None:
        """Episodes finished since the last call when the algorithm, not the loop's env, decides
        which ones count (A3C's workers play their own envs; REINFORCE trains on a subset).
        None: the loop reads `ctx.env.pop_episodes()`."""
        return None

    def terminal_view(self) -> str | None:
        """A text picture of what was learned (tabular V and policy), printed by `rltrain eval`."""
        return None

    # --- what the Python API and `rltrain export` ask (rltrain/api.py, rltrain/app/export.py) ---
    def state_values(self, obs: np.ndarray) -> np.ndarray | None:
        """V(s) for a batch of observations, where the algorithm estimates it; None where not."""
        return None

    def action_values(self, obs: np.ndarray) -> np.ndarray | None:
        """Q(s, .) for a batch of observations ([B, n_actions]); None where not estimated."""
        return None

    def policy_module(self) -> torch.nn.Module | None:
        """The deterministic policy as one CPU torch module (rltrain/networks/policy.py), with
        an `output_names` attribute; None for policies that are not a neural network."""
        return None
