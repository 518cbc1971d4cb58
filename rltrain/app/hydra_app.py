"""Hydra's own entry point for training, so multirun, launchers, sweepers and --cfg keep working."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from rltrain.app.refused_run import discard_if_refused
from rltrain.app.sweeps import train_seeds
from rltrain.atomic_write import write_text_atomic
from rltrain.config.presets import apply_preset
from rltrain.config.store import register_configs

register_configs()

# (run directory, objective) of every run this process trained, in order: what the Python API's
# `rltrain.train` returns (Hydra's entry point hands back no value of its own).
finished_runs: list[tuple[Path, float]] = []


@hydra.main(version_base="1.3", config_path="pkg://rltrain.conf", config_name="config")
def hydra_train(cfg: DictConfig) -> float:
    """Applies the tuned preset, then trains; returns the final evaluation return (the mean over
    seeds with `num_seeds=N`): the objective an Optuna sweep maximises."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    with discard_if_refused(run_dir, stop_at=Path(hydra_cfg.runtime.cwd)):
        # the command line as typed: reading the ListConfig's items would resolve `${...}` in them
        overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
        assert isinstance(overrides, list)
        print(apply_preset(cfg, [str(item) for item in overrides]), flush=True)
        if hydra_cfg.output_subdir is not None:
            # Hydra saved the config before the preset was applied: the run directory must hold
            # the values the run trains with (resume and eval read them back)
            save_config(cfg, run_dir / hydra_cfg.output_subdir / "config.yaml")
        objective = train_seeds(cfg, run_dir)
    finished_runs.append((run_dir, objective))
    return objective


def save_config(cfg: DictConfig, path: Path) -> None:
    """Write `cfg` as YAML atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, OmegaConf.to_yaml(cfg))
