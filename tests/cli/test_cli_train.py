"""`rltrain` training through the installed console script: the run directory, reproducibility,
TensorBoard contents, and the commands that run nothing (--cfg job, --help, list)."""

from __future__ import annotations

import math
import os
import re

import torch
import yaml

# What every PPO run must log (the TensorBoard tag contract, docs/metrics.md).
SCALAR_TAGS = [
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/sps",
    "charts/learning_rate",
    "eval/return_mean",
    "eval/return_std",
    "values/v_mean",
    "values/q_mean",
    "values/advantage_mean",
    "values/advantage_std",
    "values/explained_variance",
    "losses/policy_loss",
    "losses/value_loss",
    "policy/entropy",
    "policy/approx_kl",
    "policy/clip_fraction",
]
HISTOGRAM_TAGS = ["values/q", "values/v", "values/advantage"]
# Differ between identical runs by design: throughput and wall-clock.
NONDETERMINISTIC_TAGS = {"charts/sps"}


def test_train_writes_a_complete_run_directory(trained_run, summary_of, trained_run_args):
    # runs/<env>/<algo>/<time> under the working directory
    assert trained_run.parent.name == "ppo" and trained_run.parent.parent.name == "cartpole"
    assert trained_run.parent.parent.parent.name == "runs"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", trained_run.name), trained_run.name

    config = yaml.safe_load((trained_run / ".hydra" / "config.yaml").read_text())
    assert config["algo"]["name"] == "ppo" and config["env"]["id"] == "CartPole-v1"
    assert config["total_steps"] == 500 and config["env"]["num_envs"] == 2
    assert config["algo"]["n_steps"] == 32
    overrides = yaml.safe_load((trained_run / ".hydra" / "overrides.yaml").read_text())
    assert overrides == trained_run_args

    summary = summary_of(trained_run)
    rollout = 2 * 32
    assert summary["steps"] == math.ceil(500 / rollout) * rollout == 512
    assert summary["total_steps"] == 500
    assert summary["algo"] == "ppo" and summary["env"] == "cartpole" and summary["seed"] == 0
    assert summary["eval_episodes"] == 2
    assert 8 <= summary["eval_return_mean"] <= 500  # CartPole returns, whatever was learnt
    assert summary["overrides"] == trained_run_args

    last = trained_run / "checkpoints" / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["step"] == 512 and state["algo"] == "ppo" and state["env"] == "cartpole"
    assert not list((trained_run / "checkpoints").glob("*.tmp"))
    assert not list(trained_run.glob("*.log"))  # no empty hydra_app.log: warnings go to stderr

    out = (trained_run.parents[3] / "train.out").read_text()
    assert "Traceback" not in out
    assert re.search(r"done: 512 steps in .* eval return [\d.]+ ± [\d.]+ over 2 episodes", out), out


def test_event_files_hold_every_contract_tag(trained_run, tb_events, trained_run_args):
    events = tb_events(trained_run)
    tags = events.Tags()
    missing = [tag for tag in SCALAR_TAGS if tag not in tags["scalars"]]
    assert not missing, f"missing scalar tags {missing}; logged: {sorted(tags['scalars'])}"
    # one tag per quantity: the entropy is policy/entropy only
    assert "losses/entropy" not in tags["scalars"]
    for tag in SCALAR_TAGS:
        values = [event.value for event in events.Scalars(tag)]
        assert values and all(math.isfinite(v) for v in values), tag
    assert [e.step for e in events.Scalars("losses/policy_loss")] == [128, 256, 384, 512]
    assert [e.step for e in events.Scalars("eval/return_mean")] == [512]
    # approx KL is an expectation of (r - 1) - log r >= 0; fractions lie in [0, 1]
    assert all(e.value >= -1e-6 for e in events.Scalars("policy/approx_kl"))
    assert all(0 <= e.value <= 1 for e in events.Scalars("policy/clip_fraction"))
    assert all(e.value >= 8 for e in events.Scalars("charts/episodic_length"))

    for tag in HISTOGRAM_TAGS:
        assert tag in tags["histograms"], f"missing histogram {tag}: {tags['histograms']}"
        histograms = events.Histograms(tag)
        # PPO flattens a 32 x 2 rollout
        assert histograms and histograms[-1].histogram_value.num == 64, tag

    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in content, sorted(content)
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    # the keys the command line set, with their types (logger.* left out), and the preset
    assert sorted(start.hparams) == sorted(
        [a.split("=")[0] for a in trained_run_args if not a.startswith("logger.")] + ["preset"]
    )
    assert start.hparams["total_steps"].number_value == 500
    assert start.hparams["device"].string_value == "cpu"
    assert start.hparams["preset"].string_value == "ppo_cartpole"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    # the metrics are the run's own eval curves (no copy of them at step 0)
    metric_tags = [info.name.tag for info in experiment.metric_infos]
    assert metric_tags == ["eval/return_mean", "eval/best_return"]
    assert not [tag for tag in tags["scalars"] if tag.startswith("hparams/")]
    assert [e.step for e in events.Scalars("eval/best_return")] == [512]


def test_train_subcommand_equals_bare_overrides_and_is_reproducible(
    trained_run, run_cli, workdir, trained_run_args, tb_scalars, summary_of, find_run_dirs
):
    """`rltrain train k=v` trains like `rltrain k=v` (the shared run), and the same seed on the
    CPU gives identical logged scalars: every tag, step and value, except throughput."""
    result = run_cli(["train", *trained_run_args], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = find_run_dirs(workdir / "runs")
    assert run.parent.parent.name == "cartpole"
    assert summary_of(run)["steps"] == summary_of(trained_run)["steps"] == 512

    first, second = tb_scalars(trained_run), tb_scalars(run)
    assert sorted(first) == sorted(second)
    compared = 0
    for tag in sorted(set(first) - NONDETERMINISTIC_TAGS):
        assert first[tag] == second[tag], f"{tag} differs between two seed-0 runs"
        compared += len(first[tag])
    assert compared > 90  # points of every deterministic tag of a 512-step run
    for key in ("eval_return_mean", "eval_return_std", "train_return_last10"):
        assert summary_of(run)[key] == summary_of(trained_run)[key], key


def test_cfg_job_prints_the_composed_config_and_runs_nothing(run_cli, workdir):
    result = run_cli(["algo.lr=0.0123", "--cfg", "job", "env.num_envs=3"], workdir)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["algo"]["name"] == "ppo" and config["algo"]["lr"] == 0.0123
    assert config["env"]["num_envs"] == 3
    # the tuned RL Zoo preset for ppo x cartpole is picked automatically
    assert config["algo"]["gae_lambda"] == 0.8 and config["total_steps"] == 100_000
    assert {"algo", "device", "env", "logger", "network", "seed", "total_steps"} <= set(config)
    assert not (workdir / "runs").exists() and not (workdir / "outputs").exists()
    assert list(workdir.iterdir()) == []


def test_help_lists_the_subcommands(run_cli, workdir):
    result = run_cli(["--help"], workdir)
    assert result.returncode == 0, result.stderr
    for command in ("train", "eval", "resume", "list", "summary", "board"):
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, flags=re.M), command
    assert "rltrain list" in result.stdout  # how to see the config groups
    assert list(workdir.iterdir()) == []


def test_list_shows_groups_and_options_with_descriptions(run_cli, workdir):
    result = run_cli(["list"], workdir)
    assert result.returncode == 0, result.stderr
    for group in ("algo:", "env:", "network:", "device:", "logger:"):
        assert re.search(rf"^{group}$", result.stdout, flags=re.M), group
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    for option in ("ppo", "cartpole", "gym", "mlp", "auto", "cpu", "cuda", "tensorboard"):
        assert option in lines, option
        assert len(lines[option].split()) > 2, f"no description: {lines[option]!r}"
    assert "Proximal Policy Optimisation" in lines["ppo"]


def test_list_of_a_hydra_group_shows_hydras_own_options_too(run_cli, workdir):
    """rltrain's presets of hydra/launcher, then what Hydra and its plugins offer: the ones
    installed (the sweep extra: joblib, submitit) and the known ones that are not, with the
    extra that brings them (ray, not in `make install`)."""
    result = run_cli(["list", "hydra/launcher"], workdir)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert {"ray_cluster", "slurm_gpu", "basic", "joblib", "submitit_local", "submitit_slurm",
            "ray"} <= set(lines)  # fmt: skip
    for name in ("basic", "joblib", "submitit_local", "submitit_slurm"):
        assert lines[name].endswith("(Hydra)"), lines[name]
    assert lines["ray"].endswith("(Hydra)") or "pip install 'rltrain[ray]'" in lines["ray"]
    sweepers = run_cli(["list", "hydra/sweeper"], workdir).stdout
    assert re.search(r"^  optuna .*\(Hydra\)$", sweepers, flags=re.M), sweepers


def test_list_one_group(run_cli, workdir):
    result = run_cli(["list", "algo"], workdir)
    assert result.returncode == 0, result.stderr
    body = result.stdout.splitlines()
    assert body[0] == "algo:"
    options = [line.split()[0] for line in body[1:] if line.startswith("  ")]
    assert "ppo" in options and "dqn" in options
    assert all(len(line.split()) > 2 for line in body[1:] if line.startswith("  "))
    assert "env:" not in result.stdout and "cartpole" not in options


def test_a_gym_id_prints_the_algo_block_of_its_named_env(run_cli, workdir):
    """`--cfg job env=gym env.id=CartPole-v1` and `--cfg job env=cartpole`: the same preset, so
    the same hyperparameters, through the console script."""
    by_id = run_cli(["--cfg", "job", "env=gym", "env.id=CartPole-v1"], workdir)
    named = run_cli(["--cfg", "job", "env=cartpole"], workdir)
    assert by_id.returncode == named.returncode == 0, by_id.stderr + named.stderr
    first, second = yaml.safe_load(by_id.stdout), yaml.safe_load(named.stdout)
    assert first["algo"] == second["algo"] and first["algo"]["lr"] == 1e-3
    assert first["preset"] == second["preset"] == "ppo_cartpole"
    assert first["env"]["num_envs"] == second["env"]["num_envs"] == 8


def test_a_run_prints_and_records_its_preset(trained_run):
    out = (trained_run.parents[3] / "train.out").read_text()
    assert [line for line in out.splitlines() if line.startswith("preset:")] == [
        "preset: tuned/ppo_cartpole (RL Zoo)"
    ]
    saved = yaml.safe_load((trained_run / ".hydra" / "config.yaml").read_text())
    assert saved["preset"] == "ppo_cartpole"
    assert saved["algo"]["n_steps"] == 32 and saved["algo"]["gae_lambda"] == 0.8  # its values


def test_version_is_rltrains(run_cli, workdir):
    from importlib.metadata import version

    result = run_cli(["--version"], workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"rltrain {version('rltrain')}"


def test_schemas_are_neither_listed_nor_in_help(run_cli, workdir):
    listed = run_cli(["list"], workdir)
    helped = run_cli(["train", "--help"], workdir)
    assert listed.returncode == helped.returncode == 0, listed.stderr + helped.stderr
    assert "schema" not in listed.stdout and "schema" not in helped.stdout
    assert "ppo_cartpole" in listed.stdout  # the tuned presets are listed, with what they tune
    env = {**os.environ, "COMP_LINE": "rltrain algo="}
    completed = run_cli(["-sc", "query=bash"], workdir, env=env)
    assert completed.returncode == 0, completed.stderr
    assert "algo=ppo" in completed.stdout.split() and "schema" not in completed.stdout
