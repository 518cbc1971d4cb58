"""Registers the dataclass schemas in Hydra's ConfigStore.

Every YAML option extends its schema through its defaults list (`- /schema_algo_ppo@_here_`), so
configs are typed: a wrong type or an unknown key fails at composition, before anything runs.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

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
    # Schemas are root-level configs that the group options extend (`- /schema_algo_ppo@_here_`),
    # not options of the groups: `algo=ppo_schema` cannot be chosen, and help, `rltrain list` and
    # shell completion list only the real options.
    cs.store(name="schema_network", node=NetworkConfig)
    cs.store(name="schema_device", node=DeviceConfig)
    cs.store(name="schema_logger", node=LoggerConfig)
    for name, entry in ALGO_SCHEMAS.items():
        cs.store(name=f"schema_algo_{name}", node=entry.schema)
    for name, schema in ENV_SCHEMAS.items():
        cs.store(name=f"schema_env_{name}", node=_open_kwargs(schema))
    _registered = True


def _open_kwargs(schema: type) -> Any:
    """The schema as a config whose `kwargs` (free keyword arguments for the user's env) accept
    new keys: `env.kwargs={length:4}` replaces the dict instead of Hydra refusing every key of it
    as unknown (Hydra closes every dict of the config to new keys, the struct flag)."""
    node = OmegaConf.structured(schema)
    if "kwargs" in node:
        OmegaConf.set_struct(node.kwargs, False)
    return node


def compose_run_config(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The config `rltrain <overrides>` trains with: composed by Hydra's compose API from the
    packaged configs, then the tuned preset applied (`rltrain.config.presets`). For `--cfg job`,
    scripts and tests; a run itself goes through `hydra.main` (launchers, sweeps, run dirs)."""
    from hydra import compose, initialize_config_module

    from rltrain.config.presets import apply_preset

    register_configs()
    with initialize_config_module(config_module="rltrain.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=with_hydra)
    apply_preset(cfg, overrides)
    return cfg
