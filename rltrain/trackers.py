"""Experiment trackers beside TensorBoard: the same scalars, the config as params, the final
metrics and the run's config files as artifacts. `logger=mlflow`, `logger=wandb`, or several at
once with `logger.backends=[tensorboard,mlflow,wandb]`.

MLflow writes to `logger.mlflow_uri` (default: $MLFLOW_TRACKING_URI, else a sqlite file
`mlflow.db` in the working directory; `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows
it), offline, in the experiment `logger.mlflow_experiment`. The recorder hands a tracker every
scalar as it writes it; the tracker sends them in batches when the recorder flushes (one database
write per log interval, not one per episode). A resumed run continues its MLflow run: its id is
kept in the run directory (`mlflow_run_id`).

W&B runs offline by default (`logger.wandb_mode=offline`): its files go to `RUN_DIR/wandb/`, and
`wandb sync RUN_DIR/wandb/offline-run-*` uploads them later. Scalars are logged against a
`global_step` metric (W&B's own step must only grow; rltrain's tags are written at env steps).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from rltrain.errors import UserError

BACKENDS = ("tensorboard", "mlflow", "wandb")
MLFLOW_RUN_ID_FILE = "mlflow_run_id"
WANDB_RUN_ID_FILE = "wandb_run_id"
MLFLOW_BATCH = 1000  # metrics per log_batch call, MLflow's limit


class Tracker(Protocol):
    def scalar(self, tag: str, value: float, step: int) -> None:
        """Queue one scalar; sent at the next `flush`."""

    def flush(self) -> None: ...

    def finish(self, metrics: dict[str, float], step: int, run_dir: Path) -> None:
        """The run ended: its final metrics and artifacts; the tracker's run is done."""

    def close(self) -> None:
        """Called on every exit; a run not finished is marked failed (interrupted or crashed)."""


def chosen_backends(logger: Any) -> list[str]:
    """The backends of a LoggerConfig: `logger.backends`, else the one `logger.name` names."""
    names = list(logger.backends) if logger.backends is not None else [logger.name]
    names = [name for name in names if name != "none"]
    for name in names:
        if name not in BACKENDS:
            raise UserError(
                f"logger backend {name} is not known; use {', '.join(BACKENDS)} (or none), e.g. "
                "logger.backends=[tensorboard,mlflow]"
            )
    return names


def require_backend_packages(logger: Any) -> None:
    """A backend whose package is missing is one line naming the extra, before training."""
    import importlib.util

    for name in chosen_backends(logger):
        if name != "tensorboard" and importlib.util.find_spec(name) is None:
            raise UserError(
                f"logger={name} needs the {name} package: pip install 'rltrain[{name}]'"
            )


def make_trackers(logger: Any, run_dir: Path, params: dict[str, Any], resume: bool) -> list[Any]:
    trackers: list[Any] = []
    backends = chosen_backends(logger)
    if "mlflow" in backends:
        trackers.append(MLflowTracker(logger, run_dir, params, resume))
    if "wandb" in backends:
        trackers.append(WandbTracker(logger, run_dir, params, resume))
    return trackers


class _TrackerRun:
    """What both trackers share: `finish` sets `_finished`; `close` on any other way out sends
    what is queued, then ends the tracker's run as failed (`_end_unfinished`)."""

    _finished = False

    def flush(self) -> None:
        raise NotImplementedError

    def _end_unfinished(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._finished:
            return
        try:
            self.flush()
        finally:
            self._end_unfinished()


class MLflowTracker(_TrackerRun):
    """One MLflow run per rltrain run, through MLflow's own client."""

    def __init__(self, logger: Any, run_dir: Path, params: dict[str, Any], resume: bool) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        # MLflow (configuring its logger when imported, above) and its database migrations log at
        # INFO to stderr; rltrain's console says enough
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.WARNING))
        uri = logger.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
        try:  # a URI MLflow cannot use fails in the client or its first call
            self.client = MlflowClient(tracking_uri=uri)
            experiment = self.client.get_experiment_by_name(logger.mlflow_experiment)
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(f"logger.mlflow_uri={uri}: MLflow cannot open it ({first})") from None
        self._pending: list[Any] = []
        id_file = run_dir / MLFLOW_RUN_ID_FILE
        if resume and id_file.is_file():
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(logger.mlflow_experiment)
        )
        run = self.client.create_run(
            experiment_id,
            run_name=_run_name(run_dir),
            tags={"rltrain.run_dir": str(run_dir.resolve())},
        )
        self.run_id = run.info.run_id
        id_file.write_text(self.run_id + "\n")
        from mlflow.entities import Param

        entries = [Param(key, str(value)) for key, value in sorted(params.items())]
        for start in range(0, len(entries), 100):  # log_batch takes 100 params at most
            self.client.log_batch(self.run_id, params=entries[start : start + 100])

    def scalar(self, tag: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self._pending.append(Metric(tag, float(value), int(time.time() * 1000), int(step)))

    def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MLFLOW_BATCH], self._pending[MLFLOW_BATCH:]
            self.client.log_batch(self.run_id, metrics=batch)

    def finish(self, metrics: dict[str, float], step: int, run_dir: Path) -> None:
        for key, value in metrics.items():
            self.scalar(f"final/{key}", value, step)
        self.flush()
        # the config and summary, not the checkpoints (the run directory holds those)
        for name in ("summary.json", ".hydra"):
            path = run_dir / name
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=name)
            elif path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status="FINISHED")
        self._finished = True

    def _end_unfinished(self) -> None:
        self.client.set_terminated(self.run_id, status="KILLED")


class WandbTracker(_TrackerRun):
    """One W&B run per rltrain run, offline unless told otherwise."""

    def __init__(self, logger: Any, run_dir: Path, params: dict[str, Any], resume: bool) -> None:
        import wandb

        id_file = run_dir / WANDB_RUN_ID_FILE
        previous = id_file.read_text().strip() if resume and id_file.is_file() else None
        self.run = wandb.init(
            mode=logger.wandb_mode,
            dir=str(run_dir),
            project=logger.wandb_project,
            name=_run_name(run_dir),
            config=params,
            id=previous,
            resume="must" if previous else None,
            reinit="finish_previous",  # rltrain.train twice in one process, num_seeds=N
            settings=wandb.Settings(silent=True, console="off"),
        )
        id_file.write_text(self.run.id + "\n")
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")
        self._rows: list[dict[str, float]] = []  # W&B history rows not yet logged

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Into the last row when it is of this step and lacks the tag, else a new row: several
        episodes ending at one step are several points, as in TensorBoard."""
        row = self._rows[-1] if self._rows else None
        if row is None or row["global_step"] != step or tag in row:
            row = {"global_step": step}
            self._rows.append(row)
        row[tag] = float(value)

    def flush(self) -> None:
        for row in self._rows:
            self.run.log(row)
        self._rows.clear()

    def finish(self, metrics: dict[str, float], step: int, run_dir: Path) -> None:
        self.flush()
        self.run.summary.update({f"final/{key}": value for key, value in metrics.items()})
        # files in the run's files/ directory are part of the run (synced with it)
        shutil.copy(run_dir / "summary.json", Path(self.run.dir) / "summary.json")
        self.run.finish(exit_code=0)
        self._finished = True

    def _end_unfinished(self) -> None:
        self.run.finish(exit_code=1)


def _run_name(run_dir: Path) -> str:
    """`<env>/<algo>/<time>` for runs/..., `<time>/<job>` for multirun/..."""
    parts = run_dir.resolve().parts
    return "/".join(parts[-3:]) if "runs" in parts[-4:-3] else "/".join(parts[-2:])
