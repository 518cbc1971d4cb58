"""Trackers through the installed console script. MLflow, read back with MLflow's own client, and
W&B offline, read back from its run file with W&B's own record format (wandb.proto): the same
scalars as TensorBoard (tag, step and value), the config as params, the final metrics, the config
files as artifacts; `logger=mlflow` alone writes no event files; a wrong backend is one line."""

from __future__ import annotations

import importlib.util
import json
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def mlflow_run(uri: str):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("rltrain")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def test_mlflow_beside_tensorboard_gets_the_same_scalars_params_and_final_metrics(
    run_cli, workdir, tiny, find_run_dirs, summary_of, tb_scalars
):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{workdir / 'tracking.db'}"
    result = run_cli(
        [*tiny, "logger.backends=[tensorboard,mlflow]", f"logger.mlflow_uri={uri}"], workdir
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "INFO" not in result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    client, run = mlflow_run(uri)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "/".join(run_dir.parts[-3:])
    assert run.data.tags["rltrain.run_dir"] == str(run_dir)

    # the same scalars: every TensorBoard tag with the same steps and values
    scalars = tb_scalars(run_dir)
    assert {"charts/episodic_return", "losses/policy_loss", "eval/return_mean"} <= set(scalars)
    for tag, points in scalars.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, tag))
        assert [step for step, _ in history] == sorted(step for step, _ in points), tag
        assert [value for _, value in history] == pytest.approx(
            [value for _, value in sorted(points)], rel=1e-6, abs=1e-6
        ), tag

    # the config as params, the summary's numbers as final/ metrics
    params = run.data.params
    assert params["algo.n_steps"] == "32" and params["env.num_envs"] == "2"
    assert params["algo.name"] == "ppo" and params["preset"] == "ppo_cartpole"
    summary = summary_of(run_dir)
    for key in ("eval_return_mean", "best_eval_return", "steps"):
        assert run.data.metrics[f"final/{key}"] == pytest.approx(summary[key])

    # the config files as artifacts, byte for byte
    local = client.download_artifacts(run.info.run_id, "", str(workdir / "artifacts"))
    assert json.loads((workdir / "artifacts" / "summary.json").read_text()) == summary
    saved = (run_dir / ".hydra" / "config.yaml").read_text()
    assert (workdir / "artifacts" / ".hydra" / "config.yaml").read_text() == saved, local


def test_logger_mlflow_alone_writes_no_event_files(run_cli, workdir, tiny, find_run_dirs):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{workdir / 'tracking.db'}"
    result = run_cli([*tiny, "logger=mlflow", f"logger.mlflow_uri={uri}"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    assert not list(run_dir.glob("events.out.tfevents.*"))
    client, run = mlflow_run(uri)
    assert run.info.status == "FINISHED"
    assert client.get_metric_history(run.info.run_id, "charts/episodic_return")


def test_mlflow_ui_serves_the_run_it_was_told_about(run_cli, workdir, tiny, find_run_dirs):
    """What the README says to do after a run, done: `mlflow ui --backend-store-uri` on the
    store starts (MLflow 3.17's server needs SQLAlchemy 2, which the Optuna sweeper excludes)
    and its REST API lists the run with its final eval return."""
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_cli([*tiny, "logger=mlflow", f"logger.mlflow_uri={uri}"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    log = workdir / "ui.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(mlflow), "ui", "--backend-store-uri", uri, "--port", str(port), "--host",
             "127.0.0.1"], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                request = urllib.request.Request(
                    f"{api}/experiments/get-by-name?experiment_name=rltrain"
                )
                with urllib.request.urlopen(request, timeout=5) as reply:
                    experiment = json.load(reply)["experiment"]
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        search = urllib.request.Request(
            f"{api}/runs/search", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
        )  # fmt: skip
        with urllib.request.urlopen(search, timeout=30) as reply:
            (run,) = json.load(reply)["runs"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    (run_dir,) = find_run_dirs(workdir / "runs")
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run["info"]["status"] == "FINISHED"
    assert metrics["final/eval_return_mean"] == pytest.approx(summary["eval_return_mean"])


def test_an_unknown_backend_is_one_line(run_cli, workdir, tiny, one_error_line):
    message = one_error_line(run_cli([*tiny, "logger.backends=[tensorboard,comet]"], workdir))
    assert message == (
        "logger backend comet is not known; use tensorboard, mlflow, wandb (or none), e.g. "
        "logger.backends=[tensorboard,mlflow]"
    )
    assert not (workdir / "runs").exists() or not list((workdir / "runs").rglob("*.pt"))
    if importlib.util.find_spec("mlflow") is not None:
        message = one_error_line(
            run_cli([*tiny, "logger=mlflow", "logger.mlflow_uri=bogus://nowhere"], workdir)
        )
        assert message.startswith("logger.mlflow_uri=bogus://nowhere: MLflow cannot open it (")


def read_wandb_records(path: Path) -> list:
    """The records of a W&B run file: a 7-byte header, then 32 KiB blocks of chunks, each with a
    7-byte header (checksum, length, type: 1 whole, 2 first, 3 middle, 4 last) and a piece of a
    serialized `wandb.proto.wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pieces, position = [], b"", 7
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # too small for a chunk header: the writer padded the block
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        position += 7
        if kind == 0:
            position += left - 7
            continue
        pieces += data[position : position + length]
        position += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
            pieces = b""
    return records


def test_wandb_offline_gets_the_same_scalars_config_and_final_metrics(
    run_cli, workdir, tiny, find_run_dirs, summary_of, tb_scalars
):
    pytest.importorskip("wandb")
    result = run_cli([*tiny, "logger.backends=[tensorboard,wandb]"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wandb:" not in result.stdout + result.stderr  # quiet: rltrain's console says enough
    (run_dir,) = find_run_dirs(workdir / "runs")
    (offline,) = (run_dir / "wandb").glob("offline-run-*")  # `wandb sync` uploads it later
    (run_file,) = offline.glob("run-*.wandb")
    assert (run_dir / "wandb_run_id").read_text().strip() in run_file.name
    records = read_wandb_records(run_file)

    def items(entries) -> dict[str, object]:
        return {e.key or "/".join(e.nested_key): json.loads(e.value_json) for e in entries}

    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run_record.display_name == "/".join(run_dir.parts[-3:])
    config = items(run_record.config.update)
    assert config["algo.n_steps"] == 32 and config["algo.name"] == "ppo"

    history: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row = items(record.history.item)
            for tag, value in row.items():
                if not tag.startswith("_") and tag != "global_step":
                    history.setdefault(tag, []).append((int(row["global_step"]), float(value)))
    scalars = tb_scalars(run_dir)
    assert set(history) == set(scalars)
    for tag, points in scalars.items():
        assert [step for step, _ in sorted(history[tag])] == sorted(s for s, _ in points), tag
        assert [v for _, v in sorted(history[tag])] == pytest.approx(
            [v for _, v in sorted(points)], rel=1e-6, abs=1e-6
        ), tag

    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update(items(record.summary.update))
    expected = summary_of(run_dir)
    for key in ("eval_return_mean", "best_eval_return", "steps"):
        assert summary[f"final/{key}"] == pytest.approx(expected[key])
    assert json.loads((offline / "files" / "summary.json").read_text()) == expected
