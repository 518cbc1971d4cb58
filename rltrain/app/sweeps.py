"""What Hydra's launcher and sweeper plugins leave to the application in a sweep.

- `train_seeds`: the seed-aware objective, `num_seeds=N` trains N seeds in one job and returns the
  mean of their final eval returns (what an Optuna trial then maximises).
- `SweepChecks`: a Hydra callback run before a multirun starts: an Optuna sweep without a search
  space stops with one line that says how to give one, and a sqlite storage gets its directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from rltrain.errors import UserError


def train_seeds(node: DictConfig, run_dir: Path) -> float:
    """Trains `node.num_seeds` seeds and returns the mean final eval return over them.

    objective = (1/N) * sum_{k=0}^{N-1} R(seed + k), R = the final deterministic eval return.
    With N = 1 this is one ordinary run in `run_dir`. With N > 1, seed `s` trains in
    `run_dir/seed_<s>`, a complete run directory of its own (.hydra/config.yaml with seed=s and
    num_seeds=1, overrides.yaml with seed=s), so `rltrain summary` groups the seeds, and
    `rltrain eval` / `resume` work on each. Seeds run one after the other in this job.
    """
    from rltrain.config.validate import typed_config

    count = int(node.get("num_seeds", 1))
    if count < 1:
        raise UserError(f"num_seeds={count} must be at least 1")
    # A config mistake (in any job of a sweep) ends here, before the runner imports torch and
    # the algorithms: a second or more of start-up a one-line error should not wait for.
    typed_config(node)
    from rltrain.runner.loop import train

    if count == 1:
        return train(node, run_dir)
    overrides = [
        item for item in _read_overrides(run_dir)
        if item.split("=", 1)[0].lstrip("+~") not in ("seed", "num_seeds")
    ]
    returns: list[float] = []
    for offset in range(count):
        seed = int(node.seed) + offset
        child = node.copy()
        child.seed, child.num_seeds = seed, 1
        seed_dir = run_dir / f"seed_{seed}"
        (seed_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(child, seed_dir / ".hydra" / "config.yaml")
        seed_overrides = ListConfig([*overrides, f"seed={seed}"])
        OmegaConf.save(seed_overrides, seed_dir / ".hydra" / "overrides.yaml")
        returns.append(float(train(child, seed_dir)))
    mean = sum(returns) / len(returns)
    listed = ", ".join(f"{value:.2f}" for value in returns)
    print(f"objective: mean eval return {mean:.2f} over {count} seeds ({listed})", flush=True)
    return mean


def _read_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    loaded = OmegaConf.load(path)
    return [str(item) for item in loaded] if isinstance(loaded, ListConfig) else []


def _is_sweep(override: str) -> bool:
    """Whether a command-line override is a sweep (a,b / range() / interval() / choice())."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (parsed,) = OverridesParser.create().parse_overrides([override])
    except Exception:  # Hydra reports unparsable overrides itself, with a better message
        return False
    return bool(parsed.is_sweep_override())


def _fail(message: str) -> None:
    """Hydra turns exceptions raised in callbacks into warnings and goes on; a sweep that must not
    start has to end the process: one line on stderr, exit status 2, as the CLI does for errors."""
    print(f"rltrain: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class SweepChecks(Callback):
    """Checks before a multirun starts; enabled by
    `hydra.callbacks.rltrain_sweeps._target_: rltrain.app.sweeps.SweepChecks` in a config."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        if "optuna" not in str(sweeper.get("_target_", "")).lower():
            return
        params = sweeper.get("params") or {}
        task = [str(item) for item in config.hydra.overrides.task]
        if not params and not any(_is_sweep(item) for item in task):
            _fail(
                "hydra/sweeper=optuna has no search space: use a preset "
                "(`rltrain -m +search=ppo_cartpole`; `rltrain list search` lists them) or give "
                "ranges as overrides, e.g. `rltrain -m hydra/sweeper=optuna "
                "'algo.lr=tag(log,interval(1e-4,1e-2))' algo.gamma=0.98,0.99`"
            )
        direction = sweeper.get("direction")
        if getattr(direction, "name", direction) == "minimize" and not any(
            str(item).lstrip("+~").startswith("hydra.sweeper.direction=")
            for item in config.hydra.overrides.hydra
        ):
            # The plugin's default is to minimise; the objective here is a return. An explicit
            # hydra.sweeper.direction=... on the command line is kept as given.
            with open_dict(sweeper), read_write(sweeper):
                sweeper.direction = "maximize"
        storage = sweeper.get("storage")
        if isinstance(storage, str) and storage.startswith("sqlite:///"):
            # sqlite creates the database file but not its directory, and the sweeper opens the
            # study before any job (and so the sweep directory) exists.
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
