"""Hydra's own entry point for training, so multirun, launchers, sweepers and --cfg keep working."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rltrain.app.sweeps import train_seeds
from rltrain.config.store import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="pkg://rltrain.conf", config_name="config")
def hydra_train(cfg: DictConfig) -> float:
    """Returns the final evaluation return (the mean over seeds with `num_seeds=N`): the objective
    an Optuna sweep maximises."""
    return train_seeds(cfg, Path(HydraConfig.get().runtime.output_dir))
