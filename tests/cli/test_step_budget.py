"""The budget is the budget: a run trains at least `total_steps` and less than `total_steps` plus
one iteration of its configured size, for every family (budgets chosen to not be multiples of an
iteration). An iteration larger than the whole budget is refused (the bad-input matrix)."""

from __future__ import annotations

import re
import signal
import time

import pytest
import torch

# (overrides, env steps in one iteration)
CASES: dict[str, tuple[list[str], int]] = {
    "ppo": (["env.num_envs=4", "algo.n_steps=16", "algo.batch_size=64", "total_steps=1000"], 64),
    "a2c": (["algo=a2c", "env.num_envs=5", "algo.n_steps=5", "total_steps=101"], 25),
    "dqn": (["algo=dqn", "env.num_envs=7", "algo.learning_starts=50", "total_steps=300"], 7),
    "q_learning": (["algo=q_learning", "env=gridworld", "env.num_envs=3", "total_steps=100"], 3),
    "reinforce": (
        ["algo=reinforce", "env.num_envs=4", "algo.episodes_per_update=4", "total_steps=300"],
        4 * 500,  # one iteration is 4 whole episodes, at most 500 steps each
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_trains_its_budget_and_at_most_one_iteration_more(
    case, run_cli, workdir, find_run_dirs, summary_of
):
    args, iteration = CASES[case]
    total = int(next(a for a in args if a.startswith("total_steps=")).split("=")[1])
    result = run_cli([*args, "eval_episodes=1", "logger.progress=none", "device=cpu"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = find_run_dirs(workdir)
    steps = summary_of(run)["steps"]
    assert total <= steps < total + iteration, (steps, total, iteration)


# big iterations (8 x 1024 env steps, then 4 epochs over them) so that each takes a while: the
# test reads the first checkpoint and signals well inside the next iteration; checkpoints four
# iterations apart, so a stop that waited for the next one would be seen
SLOW_ITERATION = 8 * 1024
SLOW_ARGS = [
    "env.num_envs=8", "algo.n_steps=1024", "algo.batch_size=256", "algo.n_epochs=4",
    "total_steps=100000000", f"checkpoint_interval={4 * SLOW_ITERATION}", "eval_interval=0",
    "eval_episodes=1", "logger.progress=none", "device=cpu", "seed=0",
]  # fmt: skip


def test_sigterm_takes_effect_within_one_iteration(start_cli, workdir):
    """The flag a signal sets is read after every iteration: the run stops at the end of the one
    in flight (one more may have ended between reading the checkpoint and signalling), not at
    the next checkpoint, evaluation or log, and never at the end of its 10^8-step budget."""
    run = workdir / "run"
    process = start_cli([*SLOW_ARGS, f"hydra.run.dir={run}"], workdir)
    last = run / "checkpoints" / "last.pt"
    try:
        deadline = time.monotonic() + 240
        while not last.exists():
            assert process.poll() is None, (workdir / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.02)
        before = int(torch.load(last, weights_only=True)["step"])
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = (workdir / "stderr.txt").read_text()
    assert code == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
    stopped = int(re.search(r"SIGTERM at step ([\d,]+)", stderr)[1].replace(",", ""))  # type: ignore[index]
    assert stopped == int(torch.load(last, weights_only=True)["step"])  # saved where it stopped
    assert stopped % SLOW_ITERATION == 0
    assert before == 4 * SLOW_ITERATION
    assert before < stopped <= before + 2 * SLOW_ITERATION, (before, stopped)
