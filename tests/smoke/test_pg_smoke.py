"""Policy-gradient family through the CLI with tiny budgets (CartPole and Pendulum, Gaussian
options), one-line errors for bad input, and A3C's process lifecycle: every worker updates the
shared model, and a run ends with no worker left behind on SIGINT or on a worker exception."""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rltrain.algos.a3c import A3C, WorkerError
from rltrain.algos.base import Context
from rltrain.config.algos import A3CConfig
from rltrain.config.envs import GymEnvConfig
from rltrain.config.schema import Config
from rltrain.envs.factory import make_vec_env
from rltrain.envs.vec import Transition, VecEnv
from rltrain.logging import Recorder

torch.set_num_threads(1)  # small MLPs, as the trainer configures them

COMMON = [
    "total_steps=600",
    "eval_episodes=2",
    "logger.log_interval=200",
    "checkpoint_interval=0",
    "device=cpu",
]
TINY = {
    "reinforce": ["env.num_envs=2", "algo.episodes_per_update=2"],
    "a2c": ["env.num_envs=2", "algo.n_steps=8"],
    "a3c": ["algo.num_workers=2", "algo.n_steps=8"],
    "ppo": ["env.num_envs=2", "algo.n_steps=64", "algo.batch_size=64", "algo.n_epochs=1"],
}
EXPECTED_TAGS = {
    "reinforce": {
        "losses/policy_loss", "losses/value_loss", "policy/entropy", "policy/grad_variance",
        "policy/grad_variance_no_baseline", "values/v_mean", "values/q_mean",
        "values/advantage_mean", "values/advantage_std", "values/explained_variance",
    },
    "a2c": {
        "losses/policy_loss", "losses/value_loss", "policy/entropy", "values/v_mean",
        "values/q_mean", "values/advantage_mean", "values/advantage_std",
        "values/explained_variance", "charts/learning_rate",
    },
    "a3c": {
        "losses/policy_loss", "losses/value_loss", "policy/entropy", "values/v_mean",
        "values/q_mean", "values/advantage_mean", "values/explained_variance",
        "charts/episodic_return",
    },
    "ppo": {"losses/policy_loss", "values/v_mean"},
}


def run_ok(run_cli: Callable[..., Any], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = run_cli(args, cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize("env", ["cartpole", "pendulum"])
@pytest.mark.parametrize("algo", ["reinforce", "a2c", "a3c"])
def test_pg_algo_trains_through_the_cli(
    algo: str, env: str, run_cli: Callable[..., Any], workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]], summary_of: Callable[[Path], dict],
    tb_scalars: Callable[[Path], dict],
) -> None:
    run_ok(run_cli, [f"algo={algo}", f"env={env}", *COMMON, *TINY[algo]], workdir)
    (run_dir,) = find_run_dirs(workdir / "runs")
    summary = summary_of(run_dir)
    assert summary["steps"] >= 600
    assert np.isfinite(summary["eval_return_mean"])
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    tags = set(tb_scalars(run_dir))
    missing = EXPECTED_TAGS[algo] - tags
    assert not missing, f"missing tags {missing}; have {sorted(tags)}"


@pytest.mark.parametrize("algo", ["a2c", "ppo"])
def test_gaussian_options_on_pendulum(
    algo: str, run_cli: Callable[..., Any], workdir: Path,
    find_run_dirs: Callable[[Path], list[Path]], summary_of: Callable[[Path], dict],
) -> None:
    options = ["network.state_dependent_std=true", "network.squash_actions=true",
               "network.log_std_init=-1.0"]
    run_ok(run_cli, [f"algo={algo}", "env=pendulum", *COMMON, *TINY[algo], *options], workdir)
    (run_dir,) = find_run_dirs(workdir / "runs")
    assert np.isfinite(summary_of(run_dir)["eval_return_mean"])


def test_any_gym_id_with_box_actions_works(
    run_cli: Callable[..., Any], workdir: Path, find_run_dirs: Callable[[Path], list[Path]]
) -> None:
    run_ok(run_cli, ["algo=a2c", "env=gym", "env.id=Pendulum-v1", *COMMON, *TINY["a2c"]], workdir)
    assert len(find_run_dirs(workdir / "runs")) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["algo=a3c", "algo.num_workers=-1"], "algo.num_workers=-1 must be >= 0"),
        (["algo=a2c", "algo.n_steps=0"], "algo.n_steps=0 must be positive"),
        (["algo=a3c", "algo.n_steps=0"], "algo.n_steps=0 must be positive"),
        (["algo=a2c", "algo.optimizer=sgd"], "algo.optimizer=sgd is not known"),
        (["algo=reinforce", "algo.episodes_per_update=3"],
         "algo.episodes_per_update=3 must be a multiple of env.num_envs=8"),
        (["algo=a2c", "network.state_dependent_std=true"],
         "network.state_dependent_std=True is a Gaussian-policy option"),
        (["algo=ppo", "network.squash_actions=true"],
         "network.squash_actions=True is a Gaussian-policy option"),
        (["algo=reinforce", "env=gym", "env.id=Blackjack-v1"],
         "algo=reinforce needs Box or Discrete observations"),
        (["algo=a2c", "env=gym", "env.id=Blackjack-v1"],
         "algo=a2c needs Box or Discrete observations"),
        (["algo=a3c", "env=gym", "env.id=Blackjack-v1"],
         "algo=a3c needs Box or Discrete observations"),
    ],
)
def test_bad_input_is_one_line_before_training(
    args: list[str], expected: str, run_cli: Callable[..., Any], workdir: Path,
    one_error_line: Callable[[subprocess.CompletedProcess], str],
) -> None:
    result = run_cli([*args, "device=cpu"], workdir)
    message = one_error_line(result)
    assert expected in message
    # rejected before training: no step was taken, nothing was saved
    assert not list(workdir.rglob("summary.json")) and not list(workdir.rglob("*.pt"))
    assert "step" not in result.stdout


# --- A3C processes -------------------------------------------------------------------------
def a3c_context(num_workers: int, total_steps: int) -> tuple[A3C, Context]:
    cfg = A3CConfig(num_workers=num_workers, n_steps=5, optimizer="rmsprop")
    env_cfg = GymEnvConfig(name="cartpole", id="CartPole-v1")
    root = Config(algo=cfg, env=env_cfg, seed=0, total_steps=total_steps)
    ctx = Context(
        cfg=root, env=make_vec_env(env_cfg, num_envs=1, seed=0, training=True),
        device=torch.device("cpu"), recorder=Recorder(None, enabled=False),
        rng=np.random.default_rng(0), run_dir=None,
    )
    return A3C(cfg, ctx), ctx


def test_a3c_every_worker_updates_the_shared_model() -> None:
    algo, ctx = a3c_context(num_workers=3, total_steps=3_000)
    before = algo.shared.optimizer.flat.clone()
    returns: list[float] = []
    deadline = time.monotonic() + 240
    while ctx.step < ctx.cfg.total_steps and time.monotonic() < deadline:
        ctx.step += algo.iterate()
        returns += algo.pop_episodes()[0].tolist()
    assert ctx.step >= 3_000, "the workers did not use the step budget in time"
    updates = algo.worker_updates()
    assert len(updates) == 3 and min(updates) > 0, updates
    # every step came from some worker's update, and the main process saw all of them
    assert sum(updates) * 5 == ctx.step
    # the shared model (the main process's own parameters) moved, and so did the shared moments
    assert not torch.equal(before, algo.shared.optimizer.flat)
    assert float(algo.shared.optimizer.square_avg.abs().sum()) > 0  # type: ignore[union-attr]
    storage = algo.shared.optimizer.flat.untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == storage for p in algo.net.parameters())
    assert returns, "no episodes reached the main process"
    stats = ctx.recorder.flush(ctx.step)
    assert {"losses/policy_loss", "values/v_mean", "policy/entropy"} <= set(stats)
    # the budget ended the run: every worker has exited
    assert all(p.exitcode == 0 for p in algo.processes)
    ctx.env.close()


class _FailingEnv:
    """A worker env that raises after a few steps (in worker 1 only)."""

    def __init__(self, env: VecEnv) -> None:
        self.env, self.steps = env, 0
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.env.reset(seed=seed)

    def step(self, actions: np.ndarray) -> Transition:
        self.steps += 1
        if self.steps > 40:
            raise ValueError("injected env failure")
        return self.env.step(actions)

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        return self.env.pop_episodes()

    def close(self) -> None:
        self.env.close()


def failing_env_factory(cfg: Any, num_envs: int, seed: int, training: bool) -> Any:
    """Picklable by name for 'spawn' (this module is importable in the workers)."""
    env = make_vec_env(cfg, num_envs=num_envs, seed=seed, training=training)
    if multiprocessing.current_process().name == "a3c-worker-1":
        return _FailingEnv(env)
    return env


def test_a3c_worker_exception_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(A3C, "env_factory", staticmethod(failing_env_factory))
    algo, ctx = a3c_context(num_workers=3, total_steps=10_000_000)
    deadline = time.monotonic() + 240
    with pytest.raises(WorkerError, match=r"a3c worker 1 failed: ValueError: injected env failure"):
        while time.monotonic() < deadline:
            ctx.step += algo.iterate()
    # the other workers were stopped, none is left running
    assert len(algo.processes) == 3
    assert not any(p.is_alive() for p in algo.processes)
    ctx.env.close()


def _descendants(pid: int) -> set[int]:
    """All live descendants of `pid`, from /proc (no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping remains


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a3c_sigint_stops_workers_and_leaves_no_process(
    rltrain_bin: Path, workdir: Path, find_run_dirs: Callable[[Path], list[Path]]
) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", RLTRAIN_JOB_THREADS="1", NO_COLOR="1")
    env.pop("HYDRA_FULL_ERROR", None)
    args = ["algo=a3c", "algo.num_workers=2", "total_steps=100000000", "logger.progress=lines",
            "logger.log_interval=500", "checkpoint_interval=0", "device=cpu"]
    # its own session, so that the group signal below reaches it and its workers, as Ctrl-C does
    proc = subprocess.Popen(
        [str(rltrain_bin), *args], cwd=workdir, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        # wait until training is under way: a progress line means the workers report steps
        deadline, seen = time.monotonic() + 180, ""
        assert proc.stdout is not None
        while "step" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                seen += proc.stdout.readline()
            assert proc.poll() is None, seen + proc.stderr.read()  # type: ignore[union-attr]
        assert "step" in seen, "no progress within the time limit"
        descendants = _descendants(proc.pid)
        workers = {pid for pid in descendants if "spawn_main" in _cmdline(pid)}
        assert len(workers) >= 2, {pid: _cmdline(pid) for pid in descendants}

        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SIGINT" in lines[0], stderr
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in descendants) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: _cmdline(pid) for pid in descendants if _alive(pid)}
    assert not left, f"processes left behind: {left}"
    (run_dir,) = find_run_dirs(workdir / "runs")
    assert (run_dir / "checkpoints" / "last.pt").is_file()
