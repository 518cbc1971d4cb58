"""Environment kinds keyed by `env.name`: the dataclass each one is typed by."""

from __future__ import annotations

from rltrain.envs.factory import GymEnvConfig

ENVS: dict[str, type] = {
    "cartpole": GymEnvConfig,
    "gym": GymEnvConfig,
}
