"""rltrain: config-driven reinforcement learning with its value estimates in view.

The Python API (rltrain/api.py): `rltrain.load(run_dir)` -> an `Agent` with `predict`, `value`
and `q_values`; `rltrain.train([...overrides])` -> `TrainResult(run_dir, metrics)`. Those names
are imported on first use (module __getattr__), so `import rltrain` stays free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rltrain.errors import UserError

if TYPE_CHECKING:
    from rltrain.api import Agent, TrainResult, load, train

__version__ = "0.1.0"
__all__ = ["Agent", "TrainResult", "UserError", "__version__", "load", "train"]

_API = ("Agent", "TrainResult", "load", "train")


def __getattr__(name: str) -> Any:
    if name in _API:
        from rltrain import api

        return getattr(api, name)
    raise AttributeError(f"module 'rltrain' has no attribute {name!r}")
