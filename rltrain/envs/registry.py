"""Environment kinds keyed by `env.name`: the dataclass each one is typed by."""

from __future__ import annotations

from rltrain.envs.atari import AtariConfig
from rltrain.envs.factory import GymEnvConfig
from rltrain.envs.gridworld import GridWorldConfig
from rltrain.envs.traffic_light import TrafficLightConfig

ENVS: dict[str, type] = {
    "cartpole": GymEnvConfig,
    "pendulum": GymEnvConfig,
    "gym": GymEnvConfig,
    "gridworld": GridWorldConfig,
    "traffic_light": TrafficLightConfig,
    "frozen_lake": GymEnvConfig,
    "cliff_walking": GymEnvConfig,
    "taxi": GymEnvConfig,
    "atari": AtariConfig,
}
