"""What every algorithm gets (Context) and what the trainer loop asks of it (Algorithm)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from rltrain.config.schema import Config
from rltrain.envs.vec import VecEnv
from rltrain.logging import Recorder


@dataclass
class Context:
    """Shared plumbing handed to an algorithm; the loop advances `step` before each iterate()."""

    cfg: Config
    env: VecEnv
    device: torch.device
    recorder: Recorder
    rng: np.random.Generator  # the algorithm's numpy randomness (exploration, sampling)
    run_dir: Path | None
    step: int = 0  # environment steps so far, summed over envs

    @property
    def progress(self) -> float:
        """Fraction of the step budget used, in [0, 1]: drives linear schedules."""
        return min(1.0, self.step / max(1, self.cfg.total_steps))


class Algorithm(Protocol):
    """One file per family implements this; the loop owns cadence, eval, checkpoints, logging."""

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


class EpisodeSource(Protocol):
    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]: ...


def episode_source(algo: Algorithm, env: VecEnv) -> EpisodeSource:
    """Where the loop reads finished episodes: the env, unless the algorithm steps envs of its own
    (A3C's worker processes) and offers an optional `pop_episodes()` method instead."""
    return algo if hasattr(algo, "pop_episodes") else env  # type: ignore[return-value]


def finished(algo: Algorithm) -> bool:
    """Planners (value/policy iteration) end by convergence rather than by the step budget."""
    return bool(getattr(algo, "finished", False))
