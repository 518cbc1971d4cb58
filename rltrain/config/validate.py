"""Turns a composed DictConfig into typed dataclasses, with one-line errors for the user."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rltrain.config.schema import Config
from rltrain.errors import UserError


def one_line(error: BaseException) -> str:
    """The first meaningful line of an OmegaConf/Hydra error, with its full key when known."""
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    full_key = getattr(error, "full_key", None)
    if full_key and full_key not in first:
        first = f"{full_key}: {first}"
    return first


def typed_config(node: DictConfig) -> Config:
    """OmegaConf.to_object builds the dataclasses, so each schema's __post_init__ checks ranges."""
    try:
        cfg: Any = OmegaConf.to_object(node)
    except UserError:
        raise
    except OmegaConfBaseException as error:
        cause = error.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(f"invalid configuration: {one_line(error)}") from error
    if not isinstance(cfg, Config):
        raise UserError("the configuration is not an rltrain config (no base_config schema)")
    if cfg.total_steps < 1:
        raise UserError(f"total_steps={cfg.total_steps} must be at least 1")
    if cfg.eval_episodes < 1:
        raise UserError(f"eval_episodes={cfg.eval_episodes} must be at least 1")
    if cfg.logger.log_interval < 1:
        raise UserError(f"logger.log_interval={cfg.logger.log_interval} must be at least 1")
    if cfg.logger.name not in ("tensorboard", "none"):
        raise UserError(f"logger={cfg.logger.name} is not known; use tensorboard or none")
    return cfg
