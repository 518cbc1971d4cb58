"""A run refused before it wrote anything of its own leaves no directory behind.

Hydra creates the run directory, with `.hydra/` and its job log, before the task runs, so a run
that then fails validation (a bad value, an impossible algo x env pair, no memory for the
network) would leave a directory that `rltrain summary` lists and `rltrain resume` cannot use.
Only a directory that held nothing but Hydra's files when the task started is removed, and only
when no checkpoint was written into it: another run's directory (a second writer refused by the
lock) and a run that got as far as a checkpoint are kept.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from rltrain.errors import NonFiniteError, UserError, resource_message

# what Hydra writes into a run directory before the task function runs
_HYDRA_FILES = {"config.yaml", "overrides.yaml", "hydra.yaml"}


def holds_only_hydra_files(run_dir: Path) -> bool:
    """Whether `run_dir` holds nothing but Hydra's `.hydra/*.yaml` and its `*.log` job log."""
    try:
        for entry in run_dir.iterdir():
            if entry.name == ".hydra" and entry.is_dir():
                if any(p.name not in _HYDRA_FILES for p in entry.iterdir()):
                    return False
            elif not (entry.is_file() and entry.suffix == ".log"):
                return False
    except OSError:
        return False
    return True


def _has_checkpoint(run_dir: Path) -> bool:
    return any(run_dir.rglob("*.pt"))


@contextlib.contextmanager
def discard_if_refused(run_dir: Path, stop_at: Path) -> Iterator[None]:
    """Remove `run_dir` (and the parents it leaves empty, up to `stop_at`) when the block ends in
    a one-line error (a UserError other than a NaN, or a resource fault) and the run wrote no
    checkpoint, provided the directory held only Hydra's files when the block began."""
    fresh = holds_only_hydra_files(run_dir)
    try:
        yield
    except Exception as error:
        # a run stopped by a NaN keeps its event files: they show how the values blew up
        refused = isinstance(error, UserError) or resource_message(error) is not None
        refused = refused and not isinstance(error, NonFiniteError)
        if fresh and refused and not _has_checkpoint(run_dir):
            _remove(run_dir, stop_at)
        raise


def _remove(run_dir: Path, stop_at: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
    stop = stop_at.resolve()
    parent = run_dir.resolve().parent
    # runs/<env>/<algo>/ made for this run alone; never above the directory rltrain started in
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break
        parent = parent.parent
