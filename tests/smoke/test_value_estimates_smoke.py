"""Q, V and A of every family through the installed CLI: the values/q, values/v and
values/advantage histograms, losses/grad_norm wherever gradients are trained, and the Custom
Scalars chart that puts the mean Q, V and A on one plot (read back from the event files)."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]

COMMON = [
    "total_steps=400", "logger.log_interval=200", "eval_episodes=1", "logger.progress=none",
    "device=cpu", "checkpoint_interval=0",
]  # fmt: skip
OFF_POLICY = ["algo.learning_starts=100", "algo.batch_size=32", "network.hidden_sizes=[16]"]
CONTINUOUS = ["env=pendulum", "env.num_envs=1", *OFF_POLICY]
FAMILIES: dict[str, list[str]] = {
    "q_learning": ["algo=q_learning", "env=gridworld"],
    "dqn": ["algo=dqn", "env=cartpole", *OFF_POLICY, "algo.train_freq=50", "algo.gradient_steps=2"],
    "ppo": ["algo=ppo", "env=cartpole", "env.num_envs=2", "algo.n_steps=50", "algo.batch_size=50",
            "algo.n_epochs=1"],
    "a2c": ["algo=a2c", "env=cartpole", "env.num_envs=2", "algo.n_steps=8"],
    "a3c": ["algo=a3c", "env=cartpole", "algo.num_workers=2", "algo.n_steps=8"],
    "reinforce": ["algo=reinforce", "env=cartpole", "env.num_envs=2",
                  "algo.episodes_per_update=2"],
    "trpo": ["algo=trpo", "env=cartpole", "env.num_envs=2", "algo.n_steps=50",
             "algo.batch_size=50"],
    "sac": ["algo=sac", *CONTINUOUS],
    "td3": ["algo=td3", *CONTINUOUS],
    "ddpg": ["algo=ddpg", *CONTINUOUS],
}  # fmt: skip
HISTOGRAMS = ("values/q", "values/v", "values/advantage")
VALUE_LINES = ["values/q_mean", "values/v_mean", "values/advantage_mean"]
LAYOUT_TAG = "custom_scalars__config__"
# the actor's own gradient, where it has an update of its own
ACTOR_GRAD = {"sac", "td3", "ddpg", "trpo"}


def value_chart(events: Any) -> list[str]:
    """The tags on the Custom Scalars chart "values / Q, V and A (means)" of a run's events."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    (point, *_) = events.Tensors(LAYOUT_TAG)
    layout = layout_pb2.Layout.FromString(point.tensor_proto.string_val[0])
    (category,) = [c for c in layout.category if c.title == "values"]
    (chart,) = category.chart
    assert chart.title == "Q, V and A (means)"
    return list(chart.multiline.tag)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_logs_q_v_a_histograms_grad_norm_and_the_value_chart(
    family: str,
    run_cli: CliRunner,
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    tb_events: Callable[[Path], Any],
) -> None:
    result = run_cli([*FAMILIES[family], *COMMON], workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (run_dir,) = find_run_dirs(workdir / "runs")
    events = tb_events(run_dir)
    tags = events.Tags()
    for tag in HISTOGRAMS:
        assert tag in tags["histograms"], f"{family}: no {tag} in {sorted(tags['histograms'])}"
        assert events.Histograms(tag)[-1].histogram_value.num > 0
    # the chart names the three means, and each is a scalar this run wrote
    lines = value_chart(events)
    assert lines == VALUE_LINES
    assert set(lines) <= set(tags["scalars"]), sorted(tags["scalars"])
    if family == "q_learning":  # a table: no gradients
        assert "losses/grad_norm" not in tags["scalars"]
        return
    norms = [e.value for e in events.Scalars("losses/grad_norm")]
    assert norms and all(math.isfinite(n) and n > 0 for n in norms), norms
    assert ("losses/actor_grad_norm" in tags["scalars"]) == (family in ACTOR_GRAD)


def test_reinforce_without_baseline_charts_only_q(
    run_cli: CliRunner,
    workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]],
    tb_events: Callable[[Path], Any],
) -> None:
    result = run_cli([*FAMILIES["reinforce"], "algo.baseline=false", *COMMON], workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (run_dir,) = find_run_dirs(workdir / "runs")
    events = tb_events(run_dir)
    # no critic: Q is the Monte-Carlo return, and there is no V or A to chart or histogram
    assert value_chart(events) == ["values/q_mean"]
    assert "values/q_mean" in events.Tags()["scalars"]
    assert set(events.Tags()["histograms"]) & set(HISTOGRAMS) == {"values/q"}
