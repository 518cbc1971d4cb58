"""The bad-input matrix: every bad invocation below goes through the installed console
script and must end with a non-zero exit, exactly one `rltrain: error:` line on stderr that
matches the case's patterns, and no traceback (the `one_error_line` fixture checks all three).

Rows: wrong types, out-of-range values, unknown keys and group options, impossible algo x env
pairs, bad command-line flags, and missing, foreign or damaged run directories and checkpoints.
Cases already in test_cli_errors.py (algo=nope, algo.lr=abc, algo.foo=1, ...) are not repeated.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

RLTRAIN = str(Path(sys.executable).parent / "rltrain")

# A safety net: if a bad override were accepted, the accidental training stays tiny.
_SHORT = ["total_steps=64", "eval_episodes=1", "logger.progress=none"]

# name: (overrides, patterns the message must match)
TRAIN_CASES: dict[str, tuple[list[str], list[str]]] = {
    # wrong types
    "seed_not_an_int": (["seed=abc"], [r"^seed=abc is not a valid integer$"]),
    "num_envs_not_an_int": (["env.num_envs=abc"], [r"env\.num_envs=abc", r"integer"]),
    "lr_is_a_list": (["algo.lr=[1,2]"], [r"algo\.lr=\[1, 2\]", r"not a valid float"]),
    "hidden_sizes_not_a_list": (
        ["network.hidden_sizes=abc"],
        [r"network\.hidden_sizes=abc is not a list", r"\[64,64\]"],
    ),
    # out-of-range values
    "negative_lr": (["algo.lr=-0.001"], [r"algo\.lr=-0\.001 must be positive"]),
    "gamma_above_one": (["algo.gamma=1.5"], [r"algo\.gamma=1\.5 must be in \(0, 1\]"]),
    "clip_coef_zero": (["algo.clip_coef=0"], [r"algo\.clip_coef=0\.0 must be positive"]),
    "clip_coef_negative": (["algo.clip_coef=-0.2"], [r"algo\.clip_coef=-0\.2 must be positive"]),
    "ppo_batch_size_zero": (["algo.batch_size=0"], [r"algo\.batch_size=0 must be positive"]),
    "ppo_epochs_zero": (["algo.n_epochs=0"], [r"algo\.n_epochs=0 must be positive"]),
    "ppo_batch_larger_than_rollout": (
        ["env.num_envs=2", "algo.n_steps=16", "algo.batch_size=64"],
        [r"algo\.batch_size=64 is larger than a rollout", r"= 32\)", r"batch_size<=32"],
    ),
    "ppo_negative_entropy_coef": (["algo.ent_coef=-0.01"], [r"algo\.ent_coef=-0\.01", r">= 0"]),
    "negative_checkpoint_interval": (
        ["checkpoint_interval=-5"],
        [r"^checkpoint_interval=-5 must be >= 0 \(0 = only at the end\)$"],
    ),
    "gae_lambda_above_one": (["algo.gae_lambda=1.5"], [r"algo\.gae_lambda=1\.5", r"\[0, 1\]"]),
    "dqn_batch_size_negative": (
        ["algo=dqn", "algo.batch_size=-1"],
        [r"algo\.batch_size=-1 must be positive"],
    ),
    "dqn_n_step_zero": (["algo=dqn", "algo.n_steps=0"], [r"algo\.n_steps=0 must be at least 1"]),
    "dqn_final_epsilon_above_one": (
        ["algo=dqn", "algo.epsilon_end=1.5"],
        [r"algo\.epsilon_end=1\.5 must be in \[0, 1\]"],
    ),
    "dqn_initial_epsilon_negative": (
        ["algo=dqn", "algo.epsilon_start=-0.1"],
        [r"algo\.epsilon_start=-0\.1 must be in \[0, 1\]"],
    ),
    "dqn_epsilon_fraction_zero": (
        ["algo=dqn", "algo.epsilon_fraction=0"],
        [r"algo\.epsilon_fraction=0\.0", r"\(0, 1\]"],
    ),
    "q_learning_epsilon_above_one": (
        ["algo=q_learning", "env=gridworld", "algo.epsilon_start=2"],
        [r"algo\.epsilon_start=2\.0 must be in \[0, 1\]"],
    ),
    "q_learning_step_size_zero": (
        ["algo=q_learning", "env=gridworld", "algo.lr=0"],
        [r"algo\.lr=0\.0", r"\(0, 1\]"],
    ),
    "eval_episodes_zero": (["eval_episodes=0"], [r"^eval_episodes=0 must be at least 1$"]),
    "eval_epsilon_above_one": (["eval_epsilon=2"], [r"eval_epsilon=2\.0 must be in \[0, 1\]"]),
    "num_envs_zero": (["env.num_envs=0"], [r"env\.num_envs=0 must be at least 1"]),
    "log_interval_zero": (["logger.log_interval=0"], [r"logger\.log_interval=0", r"at least 1"]),
    "threads_negative": (["device.threads=-1"], [r"device\.threads=-1 must be >= 0"]),
    "gridworld_slip_above_one": (["env=gridworld", "env.slip=2"], [r"env\.slip", r"\[0, 1\]"]),
    # unknown keys, group options and values
    "unknown_env": (["env=nope"], [r"unknown env 'nope'", r"cartpole", r"gridworld"]),
    "unknown_network": (["network=nope"], [r"unknown network 'nope'", r"\bmlp\b"]),
    "unknown_logger": (["logger=nope"], [r"unknown logger 'nope'", r"tensorboard"]),
    "unknown_device": (["device=nope"], [r"unknown device 'nope'", r"\bcpu\b", r"\bcuda\b"]),
    "unknown_vectorization": (["env.vectorization=nope"], [r"env\.vectorization=nope", r"sync"]),
    "unknown_gridworld_layout": (["env=gridworld", "env.layout=zzz"], [r"'zzz'", r"4x4"]),
    "delete_a_missing_key": (["~algo.nope"], [r"algo\.nope", r"does not exist"]),
    "mistyped_subcommand": (["evaluate"], [r"'evaluate' is neither a command", r"\beval\b"]),
    "interpolation_to_nowhere": (["algo.lr=${nope}"], [r"algo\.lr", r"[Ii]nterpolation", r"nope"]),
    # impossible algo x env pairs
    "q_learning_on_cartpole": (
        ["algo=q_learning", "env=cartpole"],
        [r"algo=q_learning needs discrete observations"],
    ),
    "sarsa_on_pendulum": (["algo=sarsa", "env=pendulum"], [r"algo=sarsa needs discrete"]),
    "dqn_on_pendulum": (
        ["algo=dqn", "env=pendulum"],
        [r"algo=dqn needs a discrete action space", r"algo=ppo"],
    ),
    "sac_on_cartpole": (
        ["algo=sac", "env=cartpole"],
        [r"algo=sac needs continuous \(Box\) actions", r"use algo=dqn or algo=ppo"],
    ),
    "td3_on_gridworld": (["algo=td3", "env=gridworld"], [r"algo=td3 needs continuous"]),
    "sac_tau_out_of_range": (
        ["algo=sac", "env=pendulum", "algo.tau=1.5"],
        [r"^algo\.tau=1\.5 must be in \(0, 1\]"],
    ),
    "sac_ent_coef_not_a_number": (
        ["algo=sac", "env=pendulum", "algo.ent_coef=lots"],
        [r"^algo\.ent_coef=lots is not known; use auto or a number >= 0$"],
    ),
    "td3_negative_noise_clip": (
        ["algo=td3", "env=pendulum", "algo.target_noise_clip=-1"],
        [r"^algo\.target_noise_clip=-1\.0 must be in \[0, 10\]"],
    ),
    "trpo_max_kl_zero": (
        ["algo=trpo", "algo.max_kl=0"], [r"^algo\.max_kl=0\.0 must be in \(0, 1\]"]
    ),
    "trpo_shared_trunk": (
        ["algo=trpo", "algo.n_steps=8", "network.shared_trunk=true"],
        [r"algo=trpo fits the critic apart from the policy", r"network\.shared_trunk=true"],
    ),
    "value_iteration_on_cartpole": (
        ["algo=value_iteration", "env=cartpole"],
        [r"needs an environment model", r"q_learning"],
    ),
    "batched_vectorization_on_gridworld": (
        ["algo=q_learning", "env=gridworld", "env.vectorization=batched"],
        [r"batched exists for CartPole-v1 only", r"env=gridworld", r"env\.vectorization=sync"],
    ),
    "atari_id_through_the_gym_env": (["env=gym", "env.id=ALE/Pong-v5"], [r"use env=atari"]),
    # a network the algorithm cannot use is refused, not ignored
    "mlp_for_a_table": (
        ["algo=q_learning", "env=gridworld", "network=mlp"],
        [r"network=mlp cannot be used by algo=q_learning", r"network=tabular", r"algo=dqn"],
    ),
    "cnn_for_a_planner": (
        ["algo=value_iteration", "env=gridworld", "network=nature_cnn"],
        [r"network=nature_cnn cannot be used by algo=value_iteration"],
    ),
    "table_for_dqn": (
        ["algo=dqn", "network=tabular"], [r"network=tabular cannot be used by algo=dqn"]
    ),
    # renamed keys: one name per concept, and the old name says what it became
    "old_adam_eps": (
        ["algo.adam_eps=1e-5"], [r"'algo\.adam_eps' was renamed to 'algo\.optimizer_eps'"]
    ),
    "old_a2c_eps": (["algo=a2c", "algo.eps=1e-5"], [r"renamed to 'algo\.optimizer_eps'"]),
    "old_dqn_n_step": (
        ["algo=dqn", "algo.n_step=3"], [r"'algo\.n_step' was renamed to 'algo\.n_steps'"]
    ),
    "old_dqn_exploration": (
        ["algo=dqn", "algo.exploration_final_eps=0.1"], [r"renamed to 'algo\.epsilon_end'"]
    ),
    "old_dqn_alpha": (["algo=dqn", "algo.alpha=0.5"], [r"renamed to 'algo\.priority_alpha'"]),
    "old_tabular_alpha": (
        ["algo=sarsa", "env=gridworld", "+algo.alpha=0.5"], [r"renamed to 'algo\.lr'"]
    ),
    # schemas are no options; presets are chosen by name
    "schema_as_an_option": (["algo=ppo_schema"], [r"unknown algo 'ppo_schema'", r"\bppo\b"]),
    "unknown_preset": (["preset=rl_zoo"], [r"preset=rl_zoo is not known", r"ppo_cartpole"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_bad_training_input(case, run_cli, workdir, one_error_line):
    args, patterns = TRAIN_CASES[case]
    given = {a.split("=")[0] for a in args}
    extra = [a for a in _SHORT if a.split("=")[0] not in given]
    message = one_error_line(run_cli([*args, *extra], workdir))
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert not list(workdir.rglob("summary.json")), "a run finished despite the error"
    assert not list(workdir.rglob("*.pt")), "a checkpoint was written despite the error"


# --- run directories and checkpoints -------------------------------------------------------------
@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny DQN/CartPole run (a second algorithm to take checkpoints from)."""
    run = tmp_path_factory.mktemp("dqn") / "run"
    subprocess.run(
        [RLTRAIN, "algo=dqn", "total_steps=256", "algo.learning_starts=64", "eval_episodes=1",
         "logger.progress=none", f"hydra.run.dir={run}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return run


def _copy(trained_run: Path, workdir: Path) -> Path:
    run = workdir / "run"
    shutil.copytree(trained_run, run)
    return run


def _unfinished(run: Path) -> Path:
    """Make a finished run resumable again: more budget in its config, no summary.json."""
    (run / "summary.json").unlink()
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.total_steps = 2 * int(config.total_steps)
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    return run


def _edit_config(run: Path, key: str, value: object) -> None:
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    OmegaConf.update(config, key, value)
    OmegaConf.save(config, run / ".hydra" / "config.yaml")


def _foreign_checkpoint(run: Path, dqn_run: Path) -> None:
    """DQN's checkpoint copied into a PPO run (its older files removed)."""
    checkpoints = run / "checkpoints"
    for path in checkpoints.iterdir():
        path.unlink()
    shutil.copyfile(dqn_run / "checkpoints" / "last.pt", checkpoints / "last.pt")


def _relabelled_dqn_checkpoint(run: Path, dqn_run: Path) -> None:
    """DQN's state under a PPO label: passes the algo/env check, then cannot load."""
    _foreign_checkpoint(run, dqn_run)
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["algo"] = "ppo"
    # written as a well-formed checkpoint would be: its checksum covers the new label
    from rltrain.runner.checkpoint import CHECKSUM, payload_checksum

    del state[CHECKSUM]
    state[CHECKSUM] = payload_checksum(state)
    torch.save(state, path)


Setup = Callable[[Path, Path, Path], list[str]]  # (workdir, trained PPO run, DQN run) -> args


def _case_finished_resume(w: Path, ppo: Path, dqn: Path) -> list[str]:
    return ["resume", str(_copy(ppo, w))]


def _case_no_checkpoints(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _unfinished(_copy(ppo, w))
    shutil.rmtree(run / "checkpoints")
    return ["resume", str(run)]


def _case_eval_no_checkpoint(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _copy(ppo, w)
    for path in (run / "checkpoints").iterdir():
        path.unlink()
    return ["eval", str(run), "--episodes", "1"]


def _case_missing_best(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _copy(ppo, w)
    (run / "checkpoints" / "best.pt").unlink()
    return ["eval", str(run), "--checkpoint", "best", "--episodes", "1"]


def _case_damaged_config(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _copy(ppo, w)
    (run / ".hydra" / "config.yaml").write_text(": : [\n")
    return ["eval", str(run)]


def _with_edited_config(command: str, key: str, value: object) -> Setup:
    """A copy of the PPO run whose saved .hydra/config.yaml has `key` set to `value`, then
    `command` (eval or resume) on it."""

    def setup(w: Path, ppo: Path, dqn: Path) -> list[str]:
        run = _copy(ppo, w)
        _edit_config(run, key, value)
        return [command, str(run)]

    return setup


def _case_eval_a_file(w: Path, ppo: Path, dqn: Path) -> list[str]:
    (w / "notes.txt").write_text("hello\n")
    return ["eval", "notes.txt"]


def _with_dqn_checkpoint(command: str, damage: Callable[[Path, Path], None]) -> Setup:
    """A PPO run given a DQN checkpoint by `damage`, then `eval` (as it is) or `resume` (with
    budget left, so that resume gets as far as loading)."""

    def setup(w: Path, ppo: Path, dqn: Path) -> list[str]:
        run = _copy(ppo, w) if command == "eval" else _unfinished(_copy(ppo, w))
        damage(run, dqn)
        return [command, str(run), *(["--episodes", "1"] if command == "eval" else [])]

    return setup


def _case_resume_edited_network(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _unfinished(_copy(ppo, w))
    _edit_config(run, "network.hidden_sizes", [16])
    return ["resume", str(run)]


def _case_resume_other_env(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _unfinished(_copy(ppo, w))
    _edit_config(run, "env.name", "pendulum")
    _edit_config(run, "env.id", "Pendulum-v1")
    return ["resume", str(run)]


# name: (setup, patterns); runs that are not needed get no setup cost beyond a copy
RUN_DIR_CASES: dict[str, tuple[Setup, list[str]]] = {
    "resume_a_finished_run": (_case_finished_resume, [r"already finished", r"nothing to resume"]),
    "resume_without_checkpoints": (_case_no_checkpoints, [r"has no checkpoints/ to resume from"]),
    "eval_without_a_checkpoint": (_case_eval_no_checkpoint, [r"last\.pt does not exist"]),
    "eval_best_without_best": (_case_missing_best, [r"best\.pt does not exist"]),
    "eval_a_damaged_config": (_case_damaged_config, [r"not a readable rltrain config"]),
    "resume_a_config_of_an_unknown_algo": (
        _with_edited_config("resume", "algo.name", "nope"),
        [r"algo=nope", r"which this rltrain lacks"],
    ),
    "eval_a_config_with_a_key_of_another_version": (
        # a key this rltrain's schema lacks
        _with_edited_config("eval", "env.frames_per_step", 3),
        [r"does not fit this rltrain's config schemas",
         r"unknown config key 'env\.frames_per_step'"],
    ),
    "resume_a_config_with_a_value_of_the_wrong_type": (
        _with_edited_config("resume", "algo.lr", "fast"),
        [r"does not fit this rltrain's config schemas", r"algo\.lr=fast is not a valid float"],
    ),
    "eval_a_file": (_case_eval_a_file, [r"notes\.txt is a file, not a directory"]),
    "eval_a_checkpoint_of_another_algo": (
        _with_dqn_checkpoint("eval", _foreign_checkpoint),
        [r"checkpoint is from algo=dqn", r"run is algo=ppo"],
    ),
    "resume_a_checkpoint_of_another_algo": (
        _with_dqn_checkpoint("resume", _foreign_checkpoint),
        [r"from algo=dqn env=cartpole", r"configured for algo=ppo"],
    ),
    "resume_a_checkpoint_of_another_env": (
        _case_resume_other_env,
        [r"from algo=ppo env=cartpole", r"env=pendulum"],
    ),
    "eval_another_algos_state_under_this_algos_label": (
        _with_dqn_checkpoint("eval", _relabelled_dqn_checkpoint),
        [r"does not fit the ppo model"],
    ),
    "resume_another_algos_state_under_this_algos_label": (
        _with_dqn_checkpoint("resume", _relabelled_dqn_checkpoint),
        [r"does not fit the ppo model", r"KeyError"],
    ),
    "resume_after_the_network_was_edited": (
        _case_resume_edited_network,
        [r"does not fit the ppo model", r"RuntimeError"],
    ),
}


@pytest.mark.parametrize("case", sorted(RUN_DIR_CASES))
def test_bad_run_directory(case, run_cli, workdir, one_error_line, trained_run, dqn_run):
    setup, patterns = RUN_DIR_CASES[case]
    args = setup(workdir, trained_run, dqn_run)
    before = (
        sorted(p.name for p in (workdir / "run" / "checkpoints").glob("*"))
        if (workdir / "run" / "checkpoints").is_dir()
        else None
    )
    message = one_error_line(run_cli(args, workdir))
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    if before is not None:  # a refused resume writes no checkpoint
        assert sorted(p.name for p in (workdir / "run" / "checkpoints").glob("*")) == before


# --- command-line flags of the subcommands ------------------------------------------------------
# "{run}" is replaced by a copy of the shared tiny PPO run
FLAG_CASES: dict[str, tuple[list[str], list[str]]] = {
    "eval_zero_episodes": (
        ["eval", "{run}", "--episodes", "0"],
        [r"--episodes 0 must be at least 1"],
    ),
    "eval_episodes_not_a_number": (
        ["eval", "{run}", "--episodes", "abc"],
        [r"'--episodes'", r"integer", r"rltrain eval --help"],
    ),
    "eval_seed_not_a_number": (["eval", "{run}", "--seed", "x"], [r"'--seed'", r"integer"]),
    "eval_unknown_checkpoint": (["eval", "{run}", "--checkpoint", "nope"], [r"use last or best"]),
    "eval_unknown_option": (["eval", "{run}", "--nope"], [r"No such option: --nope"]),
    "eval_without_a_run_dir": (["eval"], [r"Missing argument", r"rltrain eval --help"]),
    "resume_without_a_run_dir": (["resume"], [r"Missing argument", r"rltrain resume --help"]),
    "resume_with_an_extra_argument": (["resume", "{run}", "extra"], [r"(?i)unexpected extra"]),
    "summary_of_a_missing_directory": (["summary", "no/such/dir"], [r"no/such/dir does not exist"]),
    "summary_unknown_option": (["summary", "{run}", "--nope"], [r"No such option: --nope"]),
    "board_on_a_missing_directory": (["board", "no/such/dir"], [r"no/such/dir does not exist"]),
    "board_port_not_a_number": (["board", "{run}", "--port", "http"], [r"'--port'", r"integer"]),
}


@pytest.mark.parametrize("case", sorted(FLAG_CASES))
def test_bad_command_line(case, run_cli, workdir, one_error_line, trained_run):
    args, patterns = FLAG_CASES[case]
    if "{run}" in args:
        run = _copy(trained_run, workdir)
        args = [str(run) if a == "{run}" else a for a in args]
    message = one_error_line(run_cli(args, workdir))
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
