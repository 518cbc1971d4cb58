"""Trackers through the installed console script, read back with MLflow's own client: the same
scalars as TensorBoard (tag, step and value), the config as params, the final metrics, the config
files as artifacts; `logger=mlflow` alone writes no event files; a wrong backend is one line."""

from __future__ import annotations

import json

import pytest

mlflow = pytest.importorskip("mlflow")


def mlflow_run(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("rltrain")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def test_mlflow_beside_tensorboard_gets_the_same_scalars_params_and_final_metrics(
    run_cli, workdir, tiny, find_run_dirs, summary_of, tb_scalars
):
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
    scalars = {tag: points for tag, points in tb_scalars(run_dir).items()
               if not tag.startswith("hparams/")}  # fmt: skip
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
    uri = f"sqlite:///{workdir / 'tracking.db'}"
    result = run_cli([*tiny, "logger=mlflow", f"logger.mlflow_uri={uri}"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = find_run_dirs(workdir / "runs")
    assert not list(run_dir.glob("events.out.tfevents.*"))
    client, run = mlflow_run(uri)
    assert run.info.status == "FINISHED"
    assert client.get_metric_history(run.info.run_id, "charts/episodic_return")


def test_an_unknown_backend_is_one_line(run_cli, workdir, tiny, one_error_line):
    message = one_error_line(run_cli([*tiny, "logger.backends=[tensorboard,comet]"], workdir))
    assert message == (
        "logger backend comet is not known; use tensorboard, mlflow (or none), e.g. "
        "logger.backends=[tensorboard,mlflow]"
    )
    assert not (workdir / "runs").exists() or not list((workdir / "runs").rglob("*.pt"))
