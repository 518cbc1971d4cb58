"""A run killed with SIGKILL at a random point and resumed ends with the same weights
and the same logged scalars as the uninterrupted run (CPU, sync envs): PPO on CartPole, DQN on
CartPole (replay buffer in the checkpoint), SAC and TD3 on Pendulum (continuous replay) and
Q-learning on the gridworld."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

RLTRAIN = str(Path(sys.executable).parent / "rltrain")

CASES = {
    "ppo_cartpole_sync": [
        "algo=ppo", "env=cartpole", "env.vectorization=sync", "total_steps=6144",
        "checkpoint_interval=512", "logger.log_interval=256",
    ],
    "ppo_cartpole_batched": [
        "algo=ppo", "env=cartpole", "total_steps=6144", "checkpoint_interval=512",
        "logger.log_interval=256",
    ],
    # the natural step is deterministic given the rollout; the critic's minibatches are not
    "trpo_cartpole": [
        "algo=trpo", "env=cartpole", "algo.n_steps=64", "total_steps=6144",
        "checkpoint_interval=512", "logger.log_interval=512", "algo.n_epochs=2",
    ],
    # the token MDP: reference, policy, optimizer, KL controller and RNGs restored
    "ppo_text": [
        "algo=ppo", "env=text", "env.pretrain_steps=20", "env.num_envs=16", "total_steps=3000",
        "checkpoint_interval=300", "logger.log_interval=300", "algo.batch_size=8",
        "algo.n_epochs=2", "algo.adaptive_kl_target=0.5", "eval_episodes=2",
    ],
    "grpo_text": [
        "algo=grpo", "env=text", "env.task=sum", "env.pretrain_steps=20", "env.num_envs=4",
        "total_steps=3000", "checkpoint_interval=300", "logger.log_interval=300",
        "algo.batch_size=16", "eval_episodes=2",
    ],
}


def scalars(run_dir: Path) -> dict[str, dict[int, list[float]]]:
    """Every scalar point as TensorBoard shows it: one accumulator over the directory, so the
    resumed writer's purge of stale events is applied."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    points: dict[str, dict[int, list[float]]] = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            points.setdefault(tag, {}).setdefault(event.step, []).append(event.value)
    return points


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return state["algo_state"]


def flat_tensors(tree: object, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(flat_tensors(value, f"{prefix}{key}."))
    elif isinstance(tree, torch.Tensor):
        out[prefix] = tree
    return out


def kill_and_resume(args: list[str], run_dir: Path, delay: float) -> int:
    process = subprocess.Popen(
        [RLTRAIN, *args, "logger.progress=none", f"hydra.run.dir={run_dir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.02)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"])
    if killed_at >= total_steps(args):
        return killed_at  # the run ended before the kill came: the caller kills sooner
    resumed = subprocess.run([RLTRAIN, "resume", str(run_dir)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    return killed_at


def total_steps(args: list[str]) -> int:
    return int(next(a for a in args if a.startswith("total_steps=")).split("=")[1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_and_resumed_run_matches_uninterrupted(case: str, tmp_path: Path) -> None:
    args = CASES[case]
    full = tmp_path / "full"
    subprocess.run(
        [RLTRAIN, *args, "logger.progress=none", f"hydra.run.dir={full}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    delay = random.Random(os.getpid()).uniform(0.0, 0.6)
    total = total_steps(args)
    for attempt in range(4):
        cut = tmp_path / f"cut{attempt}"
        killed_at = kill_and_resume(args, cut, delay)
        if killed_at < total:
            break
        delay /= 8  # the run had finished before the kill came: kill the next one sooner
    assert killed_at < total

    reference, resumed = flat_tensors(weights(full)), flat_tensors(weights(cut))
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), f"{key} differs after resume"

    a, b = scalars(full), scalars(cut)
    assert a.keys() == b.keys()
    for tag in a:
        if tag == "charts/sps":  # wall-clock speed: the only scalar allowed to differ
            assert a[tag].keys() == b[tag].keys()
            continue
        assert a[tag] == b[tag], f"{tag} differs (killed at step {killed_at})"


# Off-policy and tabular runs, each killed at two random points. Budgets are tiny (about 2 s of
# training each); the uninterrupted reference run is trained once per algorithm and shared.
KILLED_CASES: dict[str, dict[str, Any]] = {
    "dqn_cartpole": {
        "args": [
            "algo=dqn", "env=cartpole", "total_steps=2400", "algo.learning_starts=200",
            "algo.train_freq=16", "algo.gradient_steps=4", "algo.target_update_interval=100",
            "checkpoint_interval=200", "logger.log_interval=200", "eval_episodes=2",
        ],
        "interval": 200,
        "total": 2400,
    },
    "dqn_cartpole_sync_n_step": {
        "args": [
            "algo=dqn", "env=cartpole", "env.vectorization=sync", "env.num_envs=2",
            "algo.n_steps=3", "total_steps=2400", "algo.learning_starts=200",
            "algo.train_freq=8", "algo.gradient_steps=4", "algo.target_update_interval=100",
            "checkpoint_interval=200", "logger.log_interval=200", "eval_episodes=2",
        ],
        "interval": 200,
        "total": 2400,
    },
    # continuous replay (float actions, buffer in the checkpoint), twin critics, learned alpha
    "sac_pendulum": {
        "args": [
            "algo=sac", "env=pendulum", "env.num_envs=2", "total_steps=2400",
            "algo.learning_starts=200", "algo.batch_size=32", "algo.train_freq=4",
            "algo.gradient_steps=2", "network.hidden_sizes=[32,32]", "checkpoint_interval=200",
            "logger.log_interval=200", "eval_episodes=1",
        ],
        "interval": 200,
        "total": 2400,
    },
    # delayed actor updates across checkpoints, smoothing noise, q_bias episodes in flight
    "td3_pendulum": {
        "args": [
            "algo=td3", "env=pendulum", "env.num_envs=1", "total_steps=2400",
            "algo.learning_starts=200", "algo.batch_size=32", "algo.train_freq=3",
            "algo.gradient_steps=3", "network.hidden_sizes=[32,32]", "checkpoint_interval=200",
            "logger.log_interval=200", "eval_episodes=1",
        ],
        "interval": 200,
        "total": 2400,
    },
    "q_learning_gridworld": {
        "args": [
            "algo=q_learning", "env=gridworld", "env.num_envs=2", "total_steps=8000",
            "checkpoint_interval=500", "logger.log_interval=500", "eval_episodes=2",
        ],
        "interval": 500,
        "total": 8000,
    },
}


def checkpoint_step(path: Path) -> int | None:
    """The step of the checkpoint at `path`, or None while it is missing or being replaced."""
    try:
        return int(torch.load(path, weights_only=True)["step"])
    except Exception:  # between the two renames of a save, or a half-written copy
        return None


def kill_after_step(args: list[str], run_dir: Path, target: int, delay: float) -> int:
    """Starts the run, SIGKILLs it `delay` s after its checkpoint reaches step `target`, and
    returns the step of the checkpoint that survived the kill."""
    process = subprocess.Popen(
        [RLTRAIN, *args, "logger.progress=none", f"hydra.run.dir={run_dir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.pt"
    deadline, seen = time.time() + 120, 0
    try:
        while time.time() < deadline and process.poll() is None:
            try:
                mtime = last.stat().st_mtime_ns
            except FileNotFoundError:  # not written yet
                mtime = 0
            if mtime != seen:
                seen = mtime
                step = checkpoint_step(last)
                if step is not None and step >= target:
                    break
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it was killed"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return int(state["step"])


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The uninterrupted run of each KILLED_CASES entry, trained once when first asked for."""
    root = tmp_path_factory.mktemp("reference")
    done: dict[str, Path] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, case: str) -> Path:
            run = root / case
            subprocess.run(
                [RLTRAIN, *KILLED_CASES[case]["args"], "logger.progress=none",
                 f"hydra.run.dir={run}"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            self[case] = run
            return run

    yield Lazy(done)


def assert_same_run(full: Path, cut: Path, killed_at: int) -> None:
    """Bit-identical final weights (and every other tensor of the algorithm's state) and the
    same logged scalars at every step, speed aside."""
    reference, resumed = flat_tensors(weights(full)), flat_tensors(weights(cut))
    assert reference.keys() == resumed.keys()
    for key in reference:
        # bit-identical; NaN marks steps without a Q prediction in DQN's q_bias records
        torch.testing.assert_close(
            resumed[key], reference[key], rtol=0, atol=0, equal_nan=True,
            msg=lambda text, key=key: f"{key} differs after resume: {text}",
        )  # fmt: skip
    a, b = scalars(full), scalars(cut)
    assert a.keys() == b.keys()
    for tag in a:
        if tag == "charts/sps":
            assert a[tag].keys() == b[tag].keys()
            continue
        assert a[tag] == b[tag], f"{tag} differs (killed at step {killed_at})"


@pytest.mark.parametrize("point", [0, 1])
@pytest.mark.parametrize("case", sorted(KILLED_CASES))
def test_killed_off_policy_and_tabular_runs_resume_exactly(
    case: str, point: int, reference_runs: dict[str, Path], tmp_path: Path
) -> None:
    spec = KILLED_CASES[case]
    interval, total = spec["interval"], spec["total"]
    # A random checkpoint to wait for (early for point 0, late for point 1) and a random delay
    # after it, so the kill lands anywhere inside an interval: mid-update, mid-save, mid-log.
    rng = random.Random(f"{os.getpid()}-{case}-{point}")
    half = total // 2
    target = rng.randrange(interval, half, interval) if point == 0 else rng.randrange(
        half, total - 2 * interval, interval
    )
    cut = tmp_path / "cut"
    killed_at = kill_after_step(spec["args"], cut, target, rng.uniform(0.0, 0.15))
    assert 0 < killed_at < total
    resumed = subprocess.run([RLTRAIN, "resume", str(cut)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert_same_run(reference_runs[case], cut, killed_at)


def test_resume_without_a_saved_replay_buffer_says_it_starts_empty(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        # a budget far past the kill point: the run must still be going when the kill comes
        "algo=dqn", "env=cartpole", "total_steps=4000", "algo.learning_starts=100",
        "algo.train_freq=16", "algo.gradient_steps=2", "checkpoint_interval=400",
        "eval_episodes=1", "algo.checkpoint_buffer=false", "logger.progress=none",
    ]  # fmt: skip
    cut = kill_after_step(args, run, 400, 0.0)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert "buffer" not in state["algo_state"]
    resumed = subprocess.run([RLTRAIN, "resume", str(run)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    # (the SIGKILLed writer left its lock file: taken over with a warning of its own)
    lines = [
        line for line in resumed.stderr.splitlines()
        if line.strip() and "ended without releasing it" not in line
    ]
    assert "ended without releasing it; taking it over" in resumed.stderr
    assert lines == [
        "rltrain: warning: the checkpoint holds no replay buffer (algo.checkpoint_buffer=false); "
        "resuming with an empty replay buffer, updates resume after 100 more steps "
        "(algo.learning_starts)"
    ], resumed.stderr
    assert 400 <= cut < 4000
    final = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert final["step"] == 4000
    # the updates waited for learning_starts new transitions after the resume point
    assert final["algo_state"]["learning_starts_at"] == cut + 100


def test_best_holds_no_replay_buffer_and_both_checkpoints_evaluate_without_a_warning(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    subprocess.run(
        [RLTRAIN, "algo=dqn", "env=cartpole", "total_steps=512", "algo.learning_starts=64",
         "eval_interval=256", "eval_episodes=1", "logger.progress=none", f"hydra.run.dir={run}"],
        check=True, capture_output=True,
    )  # fmt: skip
    from rltrain.algos.base import REPLAY_STATE

    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert REPLAY_STATE not in best["algo_state"]
    assert "q_net" in best["algo_state"]
    # last.pt: the 512 rows written of the 100,000 (4.6 MB) the buffer holds; the rest of
    # both files is the same weights and optimizer state (1 MB)
    replay = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["algo_state"][
        REPLAY_STATE
    ]
    assert replay["steps_added"] == 512
    assert replay["obs"].shape == replay["next_obs"].shape == (512, 1, 4)
    sizes = {name: (run / "checkpoints" / name).stat().st_size for name in ("last.pt", "best.pt")}
    assert sizes["last.pt"] - sizes["best.pt"] < 100_000  # the buffer's part: 24 KB of rows
    for which in ("best", "last"):
        result = subprocess.run(
            [RLTRAIN, "eval", str(run), "--checkpoint", which, "--episodes", "1"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr  # no "resuming with an empty replay buffer"
        assert "mean" in result.stdout
