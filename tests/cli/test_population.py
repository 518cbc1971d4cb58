"""`num_seeds=K parallel_seeds=true`: K seeds of PPO (A2C, DQN) CartPole as one batched program,
each seed an ordinary run directory (curves, checkpoints, summary.json) that learns as the same
seed alone."""

from __future__ import annotations

import csv
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

# 4 iterations of 2 envs x 32 steps, 2 epochs of 2 minibatches (the shuffled path)
SMALL = [
    "total_steps=256", "env.num_envs=2", "algo.n_steps=32", "algo.batch_size=32",
    "algo.n_epochs=2", "eval_episodes=2", "logger.log_interval=64",
]  # fmt: skip
# A2C: 16 updates of 2 envs x 8 steps, each seed's own RMSprop
A2C_SMALL = [
    "total_steps=256", "env.num_envs=2", "algo.n_steps=8", "eval_episodes=2",
    "logger.log_interval=64",
]  # fmt: skip

# DQN: 12 phases of 64 env steps and 16 updates (batch 32) after a 256-step warm-up; the preset's
# double, 3-step, annealed-lr DQN on a smaller network
DQN_SMALL = [
    "algo=dqn", "total_steps=1024", "algo.learning_starts=256", "algo.train_freq=64",
    "algo.gradient_steps=16", "algo.batch_size=32", "network.hidden_sizes=[64,64]",
    "eval_episodes=2", "logger.log_interval=256",
]  # fmt: skip
# what each algorithm's checkpoint holds: its networks and its optimizer's moments
STATE = {
    "ppo": (SMALL, ("net",), ("exp_avg", "exp_avg_sq")),
    "a2c": (["algo=a2c", *A2C_SMALL], ("net",), ("square_avg",)),
    "dqn": (DQN_SMALL, ("q_net", "target_net"), ("exp_avg", "exp_avg_sq")),
}


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)


def test_population_gives_each_seed_an_ordinary_run(run_cli, workdir, summary_of, tb_scalars):
    result = run_cli(
        ["num_seeds=3", "parallel_seeds=true", "seed=5", *SMALL, "hydra.run.dir=job"], workdir
    )
    assert result.returncode == 0, result.stderr
    job = workdir / "job"
    assert "objective: mean eval return" in result.stdout
    for seed in (5, 6, 7):
        run_dir = job / f"seed_{seed}"
        summary = summary_of(run_dir)
        assert summary["seed"] == seed and summary["steps"] == 256
        assert [o for o in summary["overrides"] if o.startswith("seed=")] == [f"seed={seed}"]
        scalars = tb_scalars(run_dir)
        for tag in ("losses/policy_loss", "losses/grad_norm", "eval/return_mean"):
            assert tag in scalars, tag
        assert scalars["charts/episodic_return"]  # this seed's own episodes
        state = checkpoint(run_dir)
        # the one-seed format: plain weights, no seed axis, this seed's 2 envs
        assert state["algo_state"]["net"]["policy_head.weight"].shape == (2, 64)
        assert state["algo_state"]["obs"].shape == (2, 4)
        evaluated = run_cli(["eval", str(run_dir), "--episodes", "2"], workdir)
        assert evaluated.returncode == 0, evaluated.stderr
    curves = [tb_scalars(job / f"seed_{s}")["losses/value_loss"] for s in (5, 6, 7)]
    assert curves[0] != curves[1] != curves[2]
    # rltrain summary: one configuration of 3 seeds, its IQM and bootstrap interval beside mean
    table = run_cli(["summary", str(job), "--csv", str(workdir / "s.csv")], workdir)
    assert table.returncode == 0, table.stderr
    assert "IQM [95% CI]" in table.stdout and "1 configurations" in table.stdout
    with open(workdir / "s.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    returns = np.array([summary_of(job / f"seed_{s}")["eval_return_mean"] for s in (5, 6, 7)])
    assert row["seeds"] == "5,6,7"
    # floor(3 / 4) = 0 trimmed at each end: with three seeds the IQM is their mean
    assert float(row["eval_return_iqm"]) == pytest.approx(returns.mean())
    low, high = float(row["eval_return_iqm_ci_low"]), float(row["eval_return_iqm_ci_high"])
    assert returns.min() <= low <= float(row["eval_return_iqm"]) <= high <= returns.max()


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_a_seed_in_the_population_learns_as_the_seed_alone(algo, run_cli, workdir):
    """The same draws (envs, actions, minibatch orders, replayed minibatches) and the same
    updates: at the end the env states and random streams are equal and the weights agree to
    float rounding (batched matmuls may sum in another order than one seed's, so bit equality is
    not promised, and over a long run the curves part as any chaotic system's do; the slow test
    compares outcomes there).
    """
    small, nets, moments = STATE[algo]
    assert run_cli([f"algo={algo}", "num_seeds=2", "parallel_seeds=true", *small,
                    "hydra.run.dir=pop"], workdir).returncode == 0  # fmt: skip
    alone_run = run_cli([f"algo={algo}", "seed=1", *small, "hydra.run.dir=alone"], workdir)
    assert alone_run.returncode == 0, alone_run.stderr
    together, alone = checkpoint(workdir / "pop" / "seed_1"), checkpoint(workdir / "alone")
    budget = int(next(a for a in small if a.startswith("total_steps=")).split("=")[1])
    assert together["step"] == alone["step"] == budget
    for key in ("state", "steps", "returns"):
        assert (together["env_state"][key] == alone["env_state"][key]).all(), key
    assert torch.equal(together["rng"]["torch"], alone["rng"]["torch"])
    assert together["generator"] == alone["generator"]  # the run's numpy stream (DQN's draws)
    for net in nets:
        for name, weight in alone["algo_state"][net].items():
            torch.testing.assert_close(
                together["algo_state"][net][name], weight, atol=1e-5, rtol=0
            )
    for name in moments:
        torch.testing.assert_close(
            together["algo_state"]["optimizer"][name], alone["algo_state"]["optimizer"][name],
            atol=1e-6, rtol=1e-3,
        )  # fmt: skip
    if algo == "dqn":  # this seed's own replay buffer, filled as the seed alone fills it
        assert together["algo_state"]["updates"] == alone["algo_state"]["updates"] == 12 * 16
        replay, replay_alone = together["algo_state"]["buffer"], alone["algo_state"]["buffer"]
        assert replay["steps_added"] == replay_alone["steps_added"] == 1024
        for key in ("obs", "actions", "rewards", "terminated", "truncated", "next_obs"):
            assert torch.equal(replay[key], replay_alone[key]), key


def test_a_dqn_population_gives_each_seed_an_ordinary_run(run_cli, workdir, tb_scalars):
    result = run_cli(["num_seeds=2", "parallel_seeds=true", *DQN_SMALL, "hydra.run.dir=job"],
                     workdir)  # fmt: skip
    assert result.returncode == 0, result.stderr
    curves = []
    for seed in (0, 1):
        run_dir = workdir / "job" / f"seed_{seed}"
        scalars = tb_scalars(run_dir)
        for tag in ("losses/td_loss", "values/q_mean", "values/q_bias", "charts/epsilon",
                    "charts/episodic_return", "eval/return_mean"):  # fmt: skip
            assert scalars.get(tag), tag
        curves.append(scalars["losses/td_loss"])
        state = checkpoint(run_dir)["algo_state"]
        # the one-seed format: plain weights without a seed axis, one env, its own buffer
        assert state["q_net"]["q_head.weight"].shape == (2, 64)
        assert state["optimizer"]["exp_avg"].shape == (
            sum(t.numel() for t in state["q_net"].values()),
        )
        assert state["obs"].shape == (1, 4) and state["buffer"]["obs"].shape == (1024, 1, 4)
        best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
        assert "buffer" not in best["algo_state"] and "q_net" in best["algo_state"]
        evaluated = run_cli(["eval", str(run_dir), "--episodes", "2"], workdir)
        assert evaluated.returncode == 0, evaluated.stderr
    assert curves[0] != curves[1]


@pytest.mark.parametrize(("algo", "budget"), [("ppo", 20480), ("dqn", 8192)])
def test_an_interrupted_population_resumes_as_if_uninterrupted(
    algo, budget, run_cli, start_cli, workdir
):
    small, nets, _ = STATE[algo]
    args = ["num_seeds=2", "parallel_seeds=true", *small, f"total_steps={budget}",
            "checkpoint_interval=256", "logger.progress=lines"]  # fmt: skip
    assert run_cli([*args, "hydra.run.dir=whole"], workdir).returncode == 0
    process = start_cli([*args, "hydra.run.dir=cut"], workdir)
    first = workdir / "cut" / "seed_1" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert "continue with `rltrain resume" in (workdir / "stderr.txt").read_text()
    resumed = run_cli(["resume", str(workdir / "cut")], workdir)
    assert resumed.returncode == 0, resumed.stderr
    for seed in (0, 1):
        done, whole = checkpoint(workdir / "cut" / f"seed_{seed}"), checkpoint(
            workdir / "whole" / f"seed_{seed}"
        )
        assert done["step"] == whole["step"] == budget
        for net in nets:
            for name, weight in whole["algo_state"][net].items():
                assert torch.equal(done["algo_state"][net][name], weight), (net, name)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_sixteen_seeds_of_cartpole_all_solve(algo, run_cli, workdir, summary_of):
    """The preset's budget (PPO 1e5 steps per seed, A2C 5e5), 16 seeds at once: every seed ends
    solved (deterministic eval return >= 475 on CartPole-v1), as single runs of the preset do."""
    result = run_cli(
        [f"algo={algo}", "num_seeds=16", "parallel_seeds=true", "hydra.run.dir=pop"], workdir,
        timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    finals = [summary_of(workdir / "pop" / f"seed_{s}")["eval_return_mean"] for s in range(16)]
    assert min(finals) >= 475, finals


@pytest.mark.slow
def test_five_dqn_seeds_as_a_population_end_solved(run_cli, workdir, summary_of):
    """The DQN CartPole preset (1e5 steps per seed) for seeds 0-4 at once: each ends with a
    deterministic eval return >= 475, as the preset's single runs of seeds 0-4 do
    (tests/learning/test_dqn_learning.py)."""
    result = run_cli(
        ["algo=dqn", "num_seeds=5", "parallel_seeds=true", "hydra.run.dir=pop"], workdir,
        timeout=3600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    finals = [summary_of(workdir / "pop" / f"seed_{s}")["eval_return_mean"] for s in range(5)]
    assert min(finals) >= 475, finals
