"""Registers the dataclass schemas in Hydra's ConfigStore.

Every YAML option extends its schema through its defaults list (`- ppo_schema`), so composed
configs are typed: a wrong type or an unknown key fails at composition, before anything runs.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from rltrain.config.algos import ALGO_SCHEMAS
from rltrain.config.envs import ENV_SCHEMAS
from rltrain.config.schema import Config, DeviceConfig, LoggerConfig, NetworkConfig

_registered = False


def register_configs() -> None:
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="network", name="network_schema", node=NetworkConfig)
    cs.store(group="device", name="device_schema", node=DeviceConfig)
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    for name, entry in ALGO_SCHEMAS.items():
        cs.store(group="algo", name=f"{name}_schema", node=entry.schema)
    for name, schema in ENV_SCHEMAS.items():
        cs.store(group="env", name=f"{name}_schema", node=schema)
    _registered = True
