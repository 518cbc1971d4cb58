"""The bad-input matrix: every bad invocation below goes through the installed console
script and must end with a non-zero exit, exactly one `rltrain: error:` line on stderr that
matches the case's patterns, and no traceback (the `one_error_line` fixture checks all three).

Rows: wrong types, out-of-range values, unknown keys and group options, impossible algo x env
pairs, bad command-line flags, and missing, foreign or damaged run directories and checkpoints.
Cases already in test_cli_errors.py (algo=nope, algo.lr=abc, algo.foo=1, ...) are not repeated.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
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
    # --- issue 20 ---------------------------------------------------------------------------
    # seeds NumPy does not accept, absurdly long numbers
    "seed_negative": (["seed=-1"], [r"^seed=-1 must be in \[0, 2\^32", r"32-bit"]),
    "seed_beyond_32_bits": (["seed=4294967296"], [r"seed=4294967296 must be in \[0, 2\^32"]),
    "seed_absurdly_long": (["seed=" + "9" * 40], [r"seed=9{40} is too large"]),
    "total_steps_absurdly_long": (["total_steps=" + "9" * 30], [r"total_steps=9{30} is too large"]),
    "lr_overflowing_to_inf": (["algo.lr=1e999"], [r"algo\.lr=inf is not a finite number"]),
    # network sizes that are not positive or cannot be allocated
    "hidden_size_negative": (
        ["network.hidden_sizes=[-5]"],
        [r"hidden_sizes=\[-5\] has a layer of width -5", r"at least 1"],
    ),
    "hidden_size_zero": (["network.hidden_sizes=[0]"], [r"a layer of width 0"]),
    "hidden_sizes_too_large_to_allocate": (
        ["network.hidden_sizes=[10000000000]", "total_steps=256"],
        [r"^out of memory: ", r"network\.hidden_sizes"],
    ),
    "atari_replay_too_large_to_allocate": (
        ["algo=dqn", "env=atari", "algo.buffer_size=100000000", "algo.learning_starts=10",
         "total_steps=256"],
        [r"^out of memory: ", r"algo\.buffer_size"],
    ),
    "atari_screen_size_too_large": (
        ["env=atari", "env.screen_size=100000"], [r"env\.screen_size=100000 must be at most 420"]
    ),
    # output directories that cannot hold one
    "output_dir_under_proc": (
        ["hydra.run.dir=/proc/x"],
        [r"cannot create the output directory /proc/x", r"hydra\.run\.dir"],
    ),
    "output_dir_under_a_device": (
        ["hydra.run.dir=/dev/null/x"], [r"/dev/null/x: Not a directory", r"hydra\.run\.dir=DIR"]
    ),
    # a gymnasium id whose optional dependency is missing (skipped where Box2D is installed)
    "gym_id_needing_box2d": (
        ["env=gym", "env.id=LunarLander-v3"],
        [r"env\.id=LunarLander-v3 needs a package that is not installed", r"box2d"],
    ),
    # accepted silently before
    "max_episode_steps_negative": (
        ["env.max_episode_steps=-1", "total_steps=256"],
        [r"env\.max_episode_steps=-1 must be at least 1, or null"],
    ),
    "max_episode_steps_zero": (
        ["env.max_episode_steps=0", "total_steps=256"], [r"env\.max_episode_steps=0 must be"]
    ),
    "unknown_progress_mode": (
        ["logger.progress=fancy", "total_steps=256"],
        [r"logger\.progress=fancy is not known", r"auto, bar, lines, none"],
    ),
    "target_kl_negative": (["algo.target_kl=-1"], [r"algo\.target_kl=-1\.0 must be positive"]),
    "target_kl_zero": (["algo.target_kl=0"], [r"algo\.target_kl=0\.0 must be positive"]),
    "dqn_replay_smaller_than_a_batch": (
        ["algo=dqn", "algo.buffer_size=1", "algo.batch_size=32"],
        [r"algo\.buffer_size=1 is smaller than algo\.batch_size=32", r"buffer_size>=32"],
    ),
    "learning_starts_past_the_budget": (
        ["algo=dqn", "algo.learning_starts=100000", "total_steps=1000"],
        [r"learning_starts=100,000 is not below total_steps=1,000", r"no update would ever happen"],
    ),
    "learning_starts_at_the_budget": (
        ["algo=dqn", "algo.learning_starts=256", "total_steps=256"],
        [r"learning_starts=256 is not below total_steps=256"],
    ),
    # one iteration larger than the whole budget
    "ppo_iteration_larger_than_the_budget": (
        ["env.num_envs=1000", "total_steps=1000"],
        [r"one iteration of algo=ppo is algo\.n_steps x env\.num_envs = 32,000 env steps",
         r"more than total_steps=1,000", r"lower algo\.n_steps or env\.num_envs"],
    ),
    "ppo_iteration_of_millions": (
        ["env.num_envs=100000", "total_steps=1000"], [r"= 3,200,000 env steps"]
    ),
    "a2c_iteration_larger_than_the_budget": (
        ["algo=a2c", "env.num_envs=512", "total_steps=100"],
        [r"one iteration of algo=a2c is .* = 2,560 env steps, more than total_steps=100"],
    ),
    "dqn_iteration_larger_than_the_budget": (
        ["algo=dqn", "env.num_envs=1000", "total_steps=256", "algo.learning_starts=10"],
        [r"one iteration of algo=dqn is env\.num_envs = 1,000 env steps"],
    ),
    "q_learning_iteration_larger_than_the_budget": (
        ["algo=q_learning", "env=gridworld", "env.num_envs=1000"],
        [r"one iteration of algo=q_learning is env\.num_envs = 1,000 env steps"],
    ),
    # non-finite numbers, refused where the config is read
    "step_reward_nan": (
        ["algo=q_learning", "env=gridworld", "env.step_reward=nan", "total_steps=1999"],
        [r"^env\.step_reward=nan is not a finite number"],
    ),
    "goal_reward_minus_inf": (
        ["algo=q_learning", "env=gridworld", "env.goal_reward=-inf"],
        [r"^env\.goal_reward=-inf is not a finite number"],
    ),
    "initial_q_inf": (
        ["algo=q_learning", "env=gridworld", "algo.initial_q=inf"],
        [r"^algo\.initial_q=inf is not a finite number"],
    ),
    "lr_nan_names_the_key": (["algo.lr=nan"], [r"^algo\.lr=nan is not a finite number"]),
    # planning without a finite optimum, or stopped before it converged
    "value_iteration_gamma_1_without_a_step_cost": (
        ["algo=value_iteration", "env=gridworld", "algo.gamma=1"],
        [r"algo=value_iteration with algo\.gamma=1: its best policy never reaches a terminal",
         r"no well-defined optimum", r"algo\.gamma<1", r"env\.step_reward<0"],
    ),
    "value_iteration_gamma_1_with_a_positive_step_reward": (
        ["algo=value_iteration", "env=gridworld", "algo.gamma=1", "env.step_reward=0.1",
         "total_steps=100000"],
        [r"loops forever without reaching a terminal state earns 0\.1 per step",
         r"no finite optimum"],
    ),
    "policy_iteration_gamma_1_with_a_positive_step_reward": (
        ["algo=policy_iteration", "env=gridworld", "algo.gamma=1", "env.step_reward=0.1"],
        [r"algo=policy_iteration with algo\.gamma=1: a policy that loops forever"],
    ),
    "planning_gamma_1_on_an_env_that_never_ends": (
        ["algo=policy_iteration", "env=traffic_light", "algo.gamma=1"],
        [r"no policy ever reaches a terminal state", r"use algo\.gamma<1$"],
    ),
    "value_iteration_stopped_at_its_sweep_cap": (
        ["algo=value_iteration", "env=gridworld", "total_steps=3"],
        [r"algo=value_iteration did not converge in 3 sweeps", r"raise total_steps"],
    ),
    "policy_iteration_stopped_at_its_round_cap": (
        ["algo=policy_iteration", "env=gridworld", "env.slip=0.2", "total_steps=1"],
        [r"algo=policy_iteration did not converge in 1 rounds"],
    ),
    # messages
    "conv_dtype_float16": (
        ["network.conv_dtype=float16"],
        [r"network\.conv_dtype=float16 is not known; use float32 or bfloat16"],
    ),
    # sweeps: a range error in any job stops the sweep before its first job
    "sweep_with_a_bad_lr_in_job_1": (
        ["-m", "algo.lr=1e-3,-1"],
        [r"^sweep job 1 \(algo\.lr=-1\): algo\.lr=-1\.0 must be positive",
         r"no job of the 2 was started"],
    ),
    "sweep_with_a_bad_seed_in_job_1": (
        ["-m", "seed=0,-1"], [r"^sweep job 1 \(seed=-1\): seed=-1 must be in"]
    ),
    # beyond the classes: more threads than cores (libgomp aborted on absurd counts),
    # budgets, seeds and intervals out of range, atari and gridworld settings, types
    "threads_beyond_the_cores": (
        ["device.threads=1000000000", "total_steps=256"],
        [r"device\.threads=1000000000 is more than the \d+ CPU cores here"],
    ),
    "total_steps_zero": (["total_steps=0"], [r"^total_steps=0 must be at least 1$"]),
    "total_steps_negative": (["total_steps=-5"], [r"^total_steps=-5 must be at least 1$"]),
    "num_seeds_zero": (["num_seeds=0"], [r"^num_seeds=0 must be at least 1$"]),
    # parallel_seeds: each configuration the population does not cover, one line naming the key
    "parallel_seeds_one_seed": (
        ["parallel_seeds=true"], [r"^parallel_seeds=true .* num_seeds=1: give num_seeds=K"]
    ),
    "parallel_seeds_sac": (
        ["parallel_seeds=true", "num_seeds=2", "algo=sac", "env=pendulum"],
        [r"^parallel_seeds=true exists for algo=ppo, algo=a2c and algo=dqn only, not algo=sac"],
    ),
    "parallel_seeds_dqn_dueling": (
        ["parallel_seeds=true", "num_seeds=2", "algo=dqn", "network.dueling=true"],
        [r"^parallel_seeds=true stacks plain MLP Q-networks: use network\.dueling=false"],
    ),
    "parallel_seeds_dqn_prioritized": (
        ["parallel_seeds=true", "num_seeds=2", "algo=dqn", "algo.prioritized=true"],
        [r"^parallel_seeds=true replays each seed's buffer uniformly: use algo\.prioritized=false"],
    ),
    "parallel_seeds_sync_envs": (
        ["parallel_seeds=true", "num_seeds=2", "env.vectorization=sync"],
        [r"^parallel_seeds=true .* use env=cartpole with env\.vectorization=batched"],
    ),
    "parallel_seeds_shared_trunk": (
        ["parallel_seeds=true", "num_seeds=2", "network.shared_trunk=true"],
        [r"^parallel_seeds=true stacks two-tower MLPs: .*network\.shared_trunk=false"],
    ),
    "parallel_seeds_normalize_rewards": (
        ["parallel_seeds=true", "num_seeds=2", "algo=a2c", "algo.normalize_rewards=true"],
        [r"^parallel_seeds=true needs algo\.normalize_rewards=false"],
    ),
    "parallel_seeds_target_kl": (
        ["parallel_seeds=true", "num_seeds=2", "algo.target_kl=0.01"],
        [r"^parallel_seeds=true needs algo\.target_kl=null"],
    ),
    "eval_interval_negative": (["eval_interval=-1"], [r"^eval_interval=-1 must be >= 0"]),
    "planner_tol_zero": (
        ["algo=value_iteration", "env=gridworld", "algo.tol=0"],
        [r"algo\.tol=0\.0 must be positive"],
    ),
    "max_grad_norm_negative": (["algo.max_grad_norm=-1"], [r"algo\.max_grad_norm=-1\.0 must be"]),
    "dqn_target_update_zero": (
        ["algo=dqn", "algo.target_update_interval=0"],
        [r"target_update_interval=0 must be positive"],
    ),
    "lr_a_bool": (["algo.lr=true"], [r"algo\.lr=True is not a valid float"]),
    "ppo_n_steps_zero": (["algo.n_steps=0"], [r"algo\.n_steps=0 must be positive"]),
    "unknown_activation": (
        ["network.activation=swish"], [r"network\.activation=swish is not known"]
    ),
    "hidden_sizes_entry_not_an_int": (
        ["network.hidden_sizes=[64,abc]"],
        [r"network\.hidden_sizes\[1\]=abc is not a valid integer"],
    ),
    "atari_unknown_game": (["env=atari", "env.game=nope"], [r"env\.game=nope is not an ALE game"]),
    "atari_frame_stack_zero": (
        ["env=atari", "env.frame_stack=0"], [r"env\.frame_stack=0 must be at least 1"]
    ),
    "gridworld_ragged_layout": (
        ["algo=q_learning", "env=gridworld", "env.layout=S.G.../G"],
        [r"row 1 \('G'\) has 1 cells but row 0 has 6"],
    ),
    "gridworld_layout_without_a_goal": (
        ["algo=q_learning", "env=gridworld", "env.layout=S..."], [r"the map has no goal cell 'G'"]
    ),
    "reinforce_episodes_not_a_multiple_of_the_envs": (
        ["algo=reinforce", "env.num_envs=1000"], [r"must be a multiple of env\.num_envs=1000"]
    ),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_bad_training_input(case, run_cli, workdir, one_error_line):
    if case == "gym_id_needing_box2d" and importlib.util.find_spec("Box2D") is not None:
        pytest.skip("Box2D is installed here, so LunarLander-v3 is a valid env")
    args, patterns = TRAIN_CASES[case]
    given = {a.split("=")[0] for a in args}
    extra = [a for a in _SHORT if a.split("=")[0] not in given]
    message = one_error_line(run_cli([*args, *extra], workdir))
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    # nothing left behind: no run or sweep directory (not even an empty one), no checkpoint
    left = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    assert not left, f"a refused run left {left}"


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


def _with_summary(text: str) -> Setup:
    """An unfinished copy of the PPO run whose summary.json is `text` (damaged, hand-edited)."""

    def setup(w: Path, ppo: Path, dqn: Path) -> list[str]:
        run = _unfinished(_copy(ppo, w))
        (run / "summary.json").write_text(text)
        return ["resume", str(run)]

    return setup


def _rewrite_checkpoints(run: Path, edit: Callable[[dict], None]) -> None:
    """`edit` every checkpoint of `run` (last, previous and best alike, so that no fallback is
    left), each saved as a well-formed file would be: its checksum covers the edited dict."""
    from rltrain.runner.checkpoint import CHECKSUM, payload_checksum

    for path in (run / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        del state[CHECKSUM]
        edit(state)
        state[CHECKSUM] = payload_checksum(state)
        torch.save(state, path)


def _with_edited_checkpoints(command: str, edit: Callable[[dict], None]) -> Setup:
    def setup(w: Path, ppo: Path, dqn: Path) -> list[str]:
        run = _copy(ppo, w) if command == "eval" else _unfinished(_copy(ppo, w))
        _rewrite_checkpoints(run, edit)
        return [command, str(run), *(["--episodes", "1"] if command == "eval" else [])]

    return setup


def _drop(key: str) -> Callable[[dict], None]:
    return lambda state: state.pop(key)


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda state: state.__setitem__(key, value)


def _with_edited_replay(edit: Callable[[dict], None]) -> Setup:
    """The DQN run, resumable again, its checkpoints' replay buffer state `edit`ed (a damaged or
    hostile file whose checksum was written to match)."""

    def edit_buffer(state: dict) -> None:
        if "buffer" in state["algo_state"]:  # best.pt holds none
            edit(state["algo_state"]["buffer"])

    def setup(w: Path, ppo: Path, dqn: Path) -> list[str]:
        run = _unfinished(_copy(dqn, w))
        _rewrite_checkpoints(run, edit_buffer)
        return ["resume", str(run)]

    return setup


class _System:
    """Pickles as a call of os.system: what a malicious checkpoint would carry."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, ("true",)


def _case_os_system_payload(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _copy(ppo, w)
    for path in (run / "checkpoints").glob("*.pt"):
        torch.save({"format": 1, "payload": _System()}, path)
    return ["eval", str(run), "--episodes", "1"]


def _case_flipped_byte_without_previous(w: Path, ppo: Path, dqn: Path) -> list[str]:
    run = _copy(ppo, w)
    (run / "checkpoints" / "previous.pt").unlink(missing_ok=True)
    last = run / "checkpoints" / "last.pt"
    data = bytearray(last.read_bytes())
    # a byte in the middle of the network's weights: inside the zip's tensor data, not its
    # directory, so the file still opens and only the checksum can tell
    with zipfile.ZipFile(last) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    header = 30 + len(info.filename.encode()) + len(info.extra)  # a zip local file header
    at = info.header_offset + header + info.file_size // 2
    data[at] ^= 0x40
    last.write_bytes(bytes(data))
    return ["eval", str(run), "--episodes", "1"]


# name: (setup, patterns); runs that are not needed get no setup cost beyond a copy
RUN_DIR_CASES: dict[str, tuple[Setup, list[str]]] = {
    # --- issue 20: damaged summary.json or checkpoint dicts, tampered configs, payloads
    "resume_with_a_summary_that_is_not_json": (
        _with_summary("{not json"),
        [r"summary\.json is damaged", r"delete it to resume the run from its last checkpoint"],
    ),
    "resume_with_a_summary_whose_steps_is_a_string": (
        _with_summary('{"steps": "many"}'), [r"summary\.json is damaged", r"integer \"steps\""]
    ),
    "resume_with_a_summary_that_is_a_list": (
        _with_summary("[1, 2]"), [r"summary\.json is damaged"]
    ),
    "resume_a_checkpoint_without_its_rng_state": (
        _with_edited_checkpoints("resume", _drop("rng")),
        [r"is damaged or incomplete: it has no 'rng'"],
    ),
    "resume_a_checkpoint_whose_step_is_a_string": (
        _with_edited_checkpoints("resume", _set("step", "512")),
        [r"'step' is a str, not int"],
    ),
    "resume_a_checkpoint_with_a_negative_step": (
        _with_edited_checkpoints("resume", _set("step", -5)), [r"'step'=-5 .* must be >= 0"]
    ),
    "resume_a_checkpoint_with_a_malformed_rng_state": (
        _with_edited_checkpoints("resume", _set("rng", {"python": 1})),
        [r"random-number or logger state cannot be restored"],
    ),
    "eval_a_checkpoint_whose_algo_state_is_a_list": (
        _with_edited_checkpoints("eval", _set("algo_state", [1, 2])),
        [r"'algo_state' is a list, not dict"],
    ),
    "eval_a_checkpoint_that_calls_os_system": (
        _case_os_system_payload,
        [r"needs arbitrary unpickling and was refused", r"(os|posix)\.system"],
    ),
    "eval_a_checkpoint_with_a_flipped_byte_and_no_previous": (
        _case_flipped_byte_without_previous, [r"does not match its checksum"]
    ),
    "eval_a_config_that_reads_the_environment": (
        _with_edited_config("eval", "algo.lr", "${oc.env:HOME}"),
        [r"algo\.lr=\$\{oc\.env:HOME\}, a resolver call", r"must hold plain values"],
    ),
    "resume_a_config_that_reads_the_environment": (
        _with_edited_config("resume", "seed", "${oc.env:RLTRAIN_SEED,0}"),
        [r"seed=\$\{oc\.env:RLTRAIN_SEED,0\}, a resolver call"],
    ),
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
    "resume_a_replay_buffer_with_a_row_cut_off": (
        _with_edited_replay(lambda buffer: buffer.__setitem__("obs", buffer["obs"][:-1])),
        [r"does not fit the dqn model", r"replay state 'obs' has shape \(255, 1, 4\), expected "
         r"\(256, 1, 4\) \(the entries its counters imply\)"],
    ),
    "resume_a_replay_buffer_with_a_negative_row_count": (
        _with_edited_replay(lambda buffer: buffer.__setitem__("steps_added", -7)),
        [r"does not fit the dqn model", r"'steps_added' is -7, not a count >= 0"],
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
