"""Recorder: window means of tensors and floats, what reaches the event file, and TensorBoard's
purge on resume (the resumed writer's purge_step drops a killed run's stale points)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rltrain.logging import Recorder


def events(directory) -> EventAccumulator:
    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def scalars(directory, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events(directory).Scalars(tag)]


def test_flush_averages_tensors_and_floats_over_the_window():
    rec = Recorder(None, enabled=False)
    for value in (1.0, 2.0, 6.0):
        rec.scalar("losses/a", torch.tensor(value))
    rec.scalar("losses/b", torch.tensor(3, dtype=torch.int64))  # integer tensors average as floats
    rec.scalar("losses/b", torch.tensor(4, dtype=torch.int64))
    rec.scalar("charts/lr", 0.5)
    rec.scalar("charts/lr", 0.25)
    rec.scalar("policy/half", torch.tensor(0.5, dtype=torch.float16))
    assert rec.pending()
    means = rec.flush(step=10)
    assert means == pytest.approx(
        {"losses/a": 3.0, "losses/b": 3.5, "charts/lr": 0.375, "policy/half": 0.5}
    )
    assert isinstance(means["losses/a"], float)
    assert not rec.pending()
    assert rec.latest == means
    # the next window starts empty: only what was recorded since the last flush
    rec.scalar("losses/a", torch.tensor(-1.0))
    assert rec.flush(step=20) == {"losses/a": -1.0}
    assert rec.latest["charts/lr"] == 0.375  # latest keeps the last flushed value of every tag


def test_recorded_tensors_are_detached_snapshots():
    rec = Recorder(None, enabled=False)
    weight = torch.tensor(2.0, requires_grad=True)
    loss = weight * 3
    rec.scalar("losses/x", loss)
    assert not rec._scalars["losses/x"][0].requires_grad
    assert rec.flush(step=1)["losses/x"] == 6.0


def test_disabled_recorder_writes_nothing(tmp_path):
    rec = Recorder(tmp_path, enabled=False)
    rec.scalar("a", 1.0)
    rec.histogram("h", torch.ones(3))
    rec.write("eval/return_mean", 3.0, 5)
    assert rec.flush(step=5) == {"a": 1.0}
    assert rec.latest["eval/return_mean"] == 3.0
    rec.close()
    assert list(tmp_path.iterdir()) == []


def test_flush_writes_means_histograms_and_images(tmp_path):
    rec = Recorder(tmp_path, enabled=True)
    for step in (100, 200):
        for k in range(4):
            rec.scalar("losses/policy_loss", torch.tensor(float(step + k)))
        rec.histogram("values/v", torch.arange(10.0) + step)
        rec.histogram("values/bad", torch.tensor([1.0, float("nan")]))  # skipped: not finite
        rec.image("values/map", np.full((4, 5, 3), step // 100, dtype=np.uint8))
        rec.flush(step)
    rec.write("charts/episodic_return", 12.0, 150)
    rec.close()

    acc = events(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("losses/policy_loss")] == [
        (100, 101.5),
        (200, 201.5),
    ]
    assert [(e.step, e.value) for e in acc.Scalars("charts/episodic_return")] == [(150, 12.0)]
    histogram = acc.Histograms("values/v")
    assert [h.step for h in histogram] == [100, 200]
    assert histogram[1].histogram_value.num == 10
    assert histogram[1].histogram_value.min == 200 and histogram[1].histogram_value.max == 209
    assert "values/bad" not in acc.Tags()["histograms"]
    images = acc.Images("values/map")
    assert [(i.step, i.width, i.height) for i in images] == [(100, 5, 4), (200, 5, 4)]


def test_flush_can_leave_out_histograms_and_images(tmp_path):
    rec = Recorder(tmp_path, enabled=True)
    rec.scalar("a", 1.0)
    rec.histogram("values/v", torch.ones(5))
    rec.image("values/map", np.zeros((2, 2, 3), dtype=np.uint8))
    rec.flush(7, histograms=False, images=False)
    rec.scalar("a", 2.0)
    rec.flush(8)  # what was left out is dropped, not carried into the next window
    rec.close()
    acc = events(tmp_path)
    assert acc.Tags()["histograms"] == [] and acc.Tags()["images"] == []
    assert [e.step for e in acc.Scalars("a")] == [7, 8]


def test_hparams_keep_their_types_and_name_the_metrics_without_copying_them(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    rec = Recorder(tmp_path, enabled=True)
    rec.write("eval/return_mean", 42.0, 100)
    rec.hparams({"algo.lr": 0.001, "algo=": "ppo", "flag": True, "n": 3}, ["eval/return_mean"])
    rec.close()
    acc = events(tmp_path)
    content = acc.PluginTagToContent("hparams")
    data = plugin_data_pb2.HParamsPluginData
    start = data.FromString(content["_hparams_/session_start_info"]).session_start_info
    flag = start.hparams["flag"]
    assert flag.WhichOneof("kind") == "bool_value" and flag.bool_value  # not 1.0
    assert start.hparams["n"].number_value == 3 and start.hparams["algo="].string_value == "ppo"
    assert start.hparams["algo.lr"].number_value == 0.001
    experiment = data.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["eval/return_mean"]
    assert sorted(h.name for h in experiment.hparam_infos) == ["algo.lr", "algo=", "flag", "n"]
    end = data.FromString(content["_hparams_/session_end_info"]).session_end_info
    assert end.status == 1  # STATUS_SUCCESS
    assert acc.Tags()["scalars"] == ["eval/return_mean"]  # nothing written at step 0


def test_a_resumed_writer_purges_the_stale_points_of_a_killed_run(tmp_path):
    """A run logs steps 1..10, is killed, and resumes from a checkpoint at step 6 with
    purge_step=7: TensorBoard must drop the old 7..10 and keep the new ones, each step once."""
    first = Recorder(tmp_path, enabled=True)
    for step in range(1, 11):
        first.write("losses/policy_loss", float(step), step)
    first.close()  # (a SIGKILL loses what was not flushed; that is the loop's business)

    resumed = Recorder(tmp_path, enabled=True, purge_step=7)
    for step in range(7, 13):
        resumed.write("losses/policy_loss", 100.0 + step, step)
    resumed.close()

    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    points = scalars(tmp_path, "losses/policy_loss")
    assert [step for step, _ in points] == list(range(1, 13))
    assert [value for _, value in points] == [*range(1, 7), *range(107, 113)]


def test_purge_step_drops_exactly_the_steps_from_it_on(tmp_path):
    """purge_step=S drops old points at steps >= S and keeps S - 1: a resumed run whose checkpoint
    is at step C must pass purge_step=C + 1 to keep the old point logged at C itself."""
    first = Recorder(tmp_path, enabled=True)
    for step in (128, 256, 384):
        first.write("x", float(step), step)
    first.close()
    resumed = Recorder(tmp_path, enabled=True, purge_step=256)
    resumed.close()
    assert scalars(tmp_path, "x") == [(128, 128.0)]


def test_hparam_values_are_the_keys_the_command_line_set_with_their_composed_types():
    from omegaconf import OmegaConf

    from rltrain.runner.loop import hparam_values

    node = OmegaConf.create({
        "algo": {"name": "dqn", "lr": 0.5, "double": True}, "seed": 3, "preset": "dqn_cartpole",
        "network": {"hidden_sizes": [3, 4]}, "logger": {"progress": "none"}, "extra": "x",
    })  # fmt: skip
    overrides = [
        "algo=dqn", "algo.lr=0.5", "algo.double=true", "seed=3", "+extra=x", "~gone",
        "network.hidden_sizes=[3,4]", "logger.progress=none", "hydra.run.dir=r",
    ]  # fmt: skip
    assert hparam_values(node, overrides) == {
        "algo": "dqn", "algo.lr": 0.5, "algo.double": True, "seed": 3, "extra": "x",
        "network.hidden_sizes": "[3, 4]", "preset": "dqn_cartpole",
    }  # fmt: skip
