"""The Python API: act with a trained run in your own code, or train from Python.

    import rltrain
    agent = rltrain.load("runs/cartpole/ppo/<time>", checkpoint="best")  # or a checkpoint file
    action = agent.predict(obs)              # one observation or a batch; numpy in, numpy out
    agent.value(obs); agent.q_values(obs)    # V(s), Q(s, .) where the algorithm estimates them
    run_dir, metrics = rltrain.train(["algo=ppo", "env=cartpole", "seed=1"])

`rltrain/__init__.py` re-exports `load`, `train`, `Agent` and `TrainResult` lazily: importing the
package imports neither torch nor gymnasium (the CLI's start-up time). Loading is the same as
`rltrain eval`'s (`rltrain.app.commands.build_agent`): the run's own config, typed by its schemas,
and `torch.load(weights_only=True)`. Mistakes raise `rltrain.UserError` with a one-line message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rltrain.errors import UserError


@dataclass
class Agent:
    """A trained policy with the weights of one checkpoint, acting on the CPU."""

    algo: Any  # rltrain.algos.base.Algorithm
    config: Any  # the run's typed config (rltrain.config.schema.Config)
    observation_space: Any  # gymnasium.Space of one env
    action_space: Any
    run_dir: Path
    checkpoint: Path
    step: int  # environment steps trained when the checkpoint was written
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"algo={self.config.algo.name} env={self.config.env.name}"

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """The action for one observation, or actions for a batch ([B, *obs_shape]).

        deterministic=True: the greedy / mean action (what `rltrain eval` and an export play);
        False: sampled from the policy (DQN and tabular: epsilon-greedy with the epsilon of the
        checkpoint's step)."""
        batch, single = self._batch(obs)
        actions = np.asarray(self.algo.act(batch, deterministic))
        return actions[0] if single else actions

    def value(self, obs: Any) -> np.ndarray:
        """V(s) of one observation (a 0-d array) or of a batch ([B])."""
        batch, single = self._batch(obs)
        values = self.algo.state_values(batch)
        if values is None:
            hint = "; it has Q-values: agent.q_values(obs)" if self._has_q(batch) else ""
            raise UserError(f"{self.name} has no state-value estimate V(s){hint}")
        return np.asarray(values[0] if single else values)

    def q_values(self, obs: Any) -> np.ndarray:
        """Q(s, .) of one observation ([n_actions]) or of a batch ([B, n_actions])."""
        batch, single = self._batch(obs)
        values = self.algo.action_values(batch)
        if values is None:
            has_v = self.algo.state_values(batch) is not None
            hint = "; it has state values: agent.value(obs)" if has_v else ""
            raise UserError(f"{self.name} has no action-value estimate Q(s, a){hint}")
        return np.asarray(values[0] if single else values)

    def _has_q(self, batch: np.ndarray) -> bool:
        return self.algo.action_values(batch) is not None

    def _batch(self, obs: Any) -> tuple[np.ndarray, bool]:
        """(observations as a batch in the space's dtype, whether one observation was given)."""
        import gymnasium as gym

        space = self.observation_space
        array = np.asarray(obs)
        shape: tuple[int, ...]
        if isinstance(space, gym.spaces.Discrete):
            shape, dtype = (), np.dtype(np.int64)
        elif isinstance(space, gym.spaces.Box):
            shape, dtype = tuple(space.shape), space.dtype
        else:  # token and other structured observations: passed as they are, as a batch
            return array, False
        if array.shape == shape:
            return array.astype(dtype, copy=False)[None], True
        if array.ndim == len(shape) + 1 and array.shape[1:] == shape and len(array) > 0:
            return array.astype(dtype, copy=False), False
        raise UserError(
            f"an observation of shape {array.shape} does not fit {self.name}: give one "
            f"observation of shape {shape} or a batch of shape (B, {', '.join(map(str, shape))})"
            .replace(", )", ")")
        )

    def __repr__(self) -> str:
        return f"Agent({self.name}, step {self.step:,}, {self.checkpoint})"


def load(path: str | os.PathLike[str], checkpoint: str = "best") -> Agent:
    """The agent of a run directory (its `checkpoint`: best or last), or of one checkpoint file
    inside a run's checkpoints/ (then `checkpoint` is not used)."""
    from rltrain.app.commands import CHECKPOINT_CHOICES, build_agent

    if checkpoint not in CHECKPOINT_CHOICES:
        raise UserError(f"checkpoint={checkpoint!r}: use 'best' or 'last' (or pass a file)")
    given = Path(path)
    file: Path | None = None
    run_dir = given
    if given.is_file():
        if given.parent.name != "checkpoints":
            raise UserError(
                f"{given} is not in a run's checkpoints/ directory; give a run directory or "
                "one of its checkpoints/*.pt files (the run's config is read beside them)"
            )
        file, run_dir = given, given.parent.parent
    loaded = build_agent(run_dir, checkpoint, file)
    return Agent(
        loaded.algo, loaded.cfg, loaded.observation_space, loaded.action_space, run_dir,
        loaded.checkpoint, int(loaded.state["step"]),
    )  # fmt: skip


class TrainResult(NamedTuple):
    """What `train` returns: unpack as `run_dir, metrics = rltrain.train([...])`."""

    run_dir: Path
    metrics: dict[str, Any]  # the run's summary.json (eval_return_mean, best_eval_return, ...)


def train(overrides: list[str] | tuple[str, ...] = ()) -> TrainResult:
    """Train one run with the command line's overrides (`rltrain train OVERRIDES`), in this
    process, and return its run directory and final metrics. Sweeps (`-m`) stay on the CLI."""
    if isinstance(overrides, str):
        raise UserError(f"rltrain.train takes a list of overrides, e.g. [{overrides!r}]")
    args = [str(item) for item in overrides]
    flags = [arg for arg in args if arg.startswith("-")]
    if flags:
        raise UserError(
            f"rltrain.train takes key=value overrides only, not {flags[0]}; "
            "run sweeps and Hydra flags with the rltrain command"
        )
    from rltrain.app import hydra_app
    from rltrain.cli import run_hydra

    saved = os.environ.get("HYDRA_FULL_ERROR")
    before = len(hydra_app.finished_runs)
    try:
        run_hydra(args)
    finally:  # run_hydra sets it for the CLI's one-line errors; leave the caller's as it was
        if saved is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved
    if len(hydra_app.finished_runs) == before:
        raise UserError(f"rltrain.train({args}) trained nothing")
    run_dir, objective = hydra_app.finished_runs[-1]
    summary = run_dir / "summary.json"
    if summary.is_file():
        import json

        metrics: dict[str, Any] = json.loads(summary.read_text())
    else:  # num_seeds=N: one run directory per seed below, the objective is their mean
        metrics = {"eval_return_mean": objective}
    return TrainResult(run_dir, metrics)
