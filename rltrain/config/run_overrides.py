"""The overrides a run was given, as Hydra saved them in `<run>/.hydra/overrides.yaml`: what
the summary groups runs by, what a run's HParams show, and what a seed of a job repeats."""

from __future__ import annotations

from pathlib import Path

from omegaconf import ListConfig, OmegaConf


def read_run_overrides(run_dir: Path) -> list[str]:
    """The run's command-line overrides; [] when the file is missing or is not a list."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    loaded = OmegaConf.load(path)
    return [str(item) for item in loaded] if isinstance(loaded, ListConfig) else []
