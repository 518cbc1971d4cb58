"""A3C: asynchronous advantage actor-critic (Mnih et al. 2016, "Asynchronous Methods for Deep
Reinforcement Learning", algorithm S3).

Read top to bottom: the config; the worker (a process with its own env and local copy of the
model: copy the shared weights, play n_steps, compute A2C's loss gradient on the local copy,
apply it to the shared weights through the shared optimizer, repeat); and the main-process side
that the trainer loop drives. The shared model is the flat parameter buffer of an optimizer from
rltrain/blocks/optim.py, in shared memory together with the optimizer's statistics: every worker
updates the same RMSprop/Adam moments, lock-free (the paper's "shared RMSProp").

How it fits the one trainer loop: workers start at the first `iterate()`. Each `iterate()` waits
(at most POLL_SECONDS) on the workers' report queue, records their loss and value statistics,
and returns how many env steps the workers took since the last call, read from a shared
counter. Logging, evaluation and checkpoints stay in the main process, on the shared model.
Finished episodes reach the loop through `pop_episodes()` (the Context's env is never stepped).

Processes are started with 'spawn': the trainer already runs threads (TensorBoard's writer,
torch's intra-op pool) and forking a threaded process can copy a held lock into the child and
deadlock it; spawn starts clean interpreters (about a second of imports per worker, once).
Workers ignore SIGINT (Ctrl-C reaches the whole process group; the main process decides), watch
a stop Event, and exit when the step budget is used or their parent is gone. A worker that
raises prints its traceback and reports the error; the main process then stops the others and
ends the run with one line naming the worker.

Runs are NOT exactly reproducible: the order in which workers' updates interleave depends on
the OS scheduler (Hogwild-style, Recht et al. 2011), so the same seed gives different curves.
CPU only: the shared model lives in shared CPU memory.
"""

from __future__ import annotations

import dataclasses
import os
import queue as queue_module
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.multiprocessing as mp

from rltrain import tags
from rltrain.algos.actor_critic import (
    ActorCriticInference,
    RolloutCollector,
    actor_critic_loss,
    anneal_lr,
    check_actor_critic_env,
    flat_batch,
    make_optimizer,
    record_losses,
    to_env_actions,
)
from rltrain.algos.base import Algorithm, Context, check_iteration_fits, obs_to_tensor
from rltrain.blocks.optim import Adam, RMSprop
from rltrain.blocks.schedules import budget_used
from rltrain.blocks.stats import explained_variance
from rltrain.config.algos import A3CConfig
from rltrain.config.schema import NetworkConfig
from rltrain.envs.factory import make_vec_env
from rltrain.envs.vec import VecEnv
from rltrain.errors import UserError
from rltrain.networks import build_actor_critic
from rltrain.networks.hand_backward import Evaluation

POLL_SECONDS = 0.2  # longest iterate() waits for worker reports
REPORT_SECONDS = 0.1  # how often a worker sends its statistics
JOIN_SECONDS = 5.0  # shutdown: wait this long for workers before terminating them
HISTOGRAM_SAMPLES = 512  # V / advantage samples a worker keeps for the histograms


class WorkerError(UserError):
    """A worker process failed. A UserError so that the CLI ends with one line: the worker has
    already printed its own traceback, and the main process's would only show the polling."""


# --- the worker -----------------------------------------------------------------------------
class WorkerSpec(NamedTuple):
    """Everything a worker needs besides the shared objects; picklable for 'spawn'."""

    rank: int
    cfg: A3CConfig
    env_cfg: Any
    network_cfg: NetworkConfig
    seed: int
    total_steps: int
    parent_pid: int
    env_factory: Callable[..., VecEnv]
    flush_denormal: bool  # device.flush_denormal: a spawned worker starts without the mode


class Shared(NamedTuple):
    """Objects in shared memory or OS pipes, handed to every worker."""

    # The shared model's weights are the optimizer's flat parameter buffer, and its statistics
    # (RMSprop's mean square, Adam's moments and step count) are shared as well: the paper's
    # "shared RMSProp" (Mnih et al. 2016, sec. 4 and S2), updated lock-free by every worker.
    optimizer: Adam | RMSprop
    counter: Any  # multiprocessing Value('q'): env steps taken by all workers together
    updates: torch.Tensor  # [num_workers] int64: updates applied by each worker
    stop: Any  # multiprocessing Event
    reports: Any  # multiprocessing Queue: worker -> main messages


class _Window:
    """A worker's statistics since its last report (sums, so the main process can average)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.values: list[torch.Tensor] = []
        self.returns: list[torch.Tensor] = []
        self.advantages: list[torch.Tensor] = []

    def add(
        self,
        stats: dict[str, float],
        values: torch.Tensor,
        returns: torch.Tensor,
        advantages: torch.Tensor,
    ) -> None:
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        self.values.append(values.flatten())
        self.returns.append(returns.flatten())
        self.advantages.append(advantages.flatten())

    def summary(self) -> dict[str, Any]:
        values, returns = torch.cat(self.values), torch.cat(self.returns)
        advantages = torch.cat(self.advantages)
        out: dict[str, Any] = {key: total / self.count for key, total in self.sums.items()}
        out.update(
            v_mean=float(values.mean()),
            q_mean=float(returns.mean()),
            advantage_mean=float(advantages.mean()),
            advantage_std=float(advantages.std()) if advantages.numel() > 1 else 0.0,
            explained_variance=float(explained_variance(values, returns)),
            v_samples=values[-HISTOGRAM_SAMPLES:].numpy(),
            q_samples=returns[-HISTOGRAM_SAMPLES:].numpy(),
            advantage_samples=advantages[-HISTOGRAM_SAMPLES:].numpy(),
        )
        return out


def worker_main(spec: WorkerSpec, shared: Shared) -> None:
    """Process entry point: run the worker loop, report any error, never hang the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    torch.set_num_threads(1)  # one core per worker; more threads would only contend
    torch.set_flush_denormal(spec.flush_denormal)  # as the trainer (rltrain.runner.device)
    try:
        _worker_loop(spec, shared)
    except BaseException as error:
        traceback.print_exc()
        shared.reports.put(("error", spec.rank, f"{type(error).__name__}: {error}"))
        raise SystemExit(1) from None
    shared.reports.put(("done", spec.rank, None))


def _worker_loop(spec: WorkerSpec, shared: Shared) -> None:
    cfg, rank = spec.cfg, spec.rank
    torch.manual_seed(spec.seed)
    env_cfg = spec.env_cfg
    if getattr(env_cfg, "vectorization", "sync") == "async":
        # one env per worker: a subprocess vector env would only add a hop (and daemonic
        # workers may not start processes of their own)
        env_cfg = dataclasses.replace(env_cfg, vectorization="sync")
    env = spec.env_factory(env_cfg, num_envs=1, seed=spec.seed, training=True)
    try:
        local = build_actor_critic(
            env.single_observation_space, env.single_action_space, spec.network_cfg
        )
        # The local model's own flat buffers: theta' is one copy away from the shared theta, and
        # its gradient d theta' is one tensor that the shared optimizer reads.
        local_buffers = make_optimizer(
            local.parameters(), cfg.optimizer, cfg.lr, cfg.rms_alpha, cfg.optimizer_eps
        )
        shared_optimizer = shared.optimizer
        shared_optimizer.use_worker_buffers(local_buffers)
        collector = RolloutCollector(
            env, cfg.n_steps, torch.device("cpu"), env.reset(seed=spec.seed)
        )
        window, last_report = _Window(), time.monotonic()
        while not shared.stop.is_set() and os.getppid() == spec.parent_pid:
            taken = shared.counter.value
            if taken >= spec.total_steps:
                break
            # theta' <- theta: act and differentiate on a private copy of the shared weights
            local_buffers.flat.copy_(shared_optimizer.flat)
            rollout = collector.collect(local, cfg.gamma, cfg.gae_lambda)
            obs, actions, advantages, returns = flat_batch(rollout, cfg.normalize_advantages)
            loss, stats = actor_critic_loss(
                Evaluation(*local.evaluate(obs, actions)), advantages, returns, cfg.vf_coef,
                cfg.ent_coef,
            )  # fmt: skip
            assert loss.value is not None  # the autograd form: workers use autograd
            local_buffers.zero_grad()
            loss.value.backward()
            grad_norm = local_buffers.clip_grad_norm(cfg.max_grad_norm)
            # theta <- theta - lr * update(d theta'), on the shared weights and statistics, no lock
            lr = anneal_lr(
                shared_optimizer, cfg.lr, cfg.anneal_lr, budget_used(taken, spec.total_steps)
            )
            shared_optimizer.step()
            with shared.counter.get_lock():
                shared.counter.value += cfg.n_steps
            shared.updates[rank] += 1

            window.add(
                {
                    "policy_loss": float(stats.policy_loss),
                    "value_loss": float(stats.value_loss),
                    "entropy": float(stats.entropy),
                    "learning_rate": lr,
                    "grad_norm": float(grad_norm),
                },
                rollout.values,
                rollout.returns,
                rollout.advantages,
            )
            now = time.monotonic()
            if now - last_report >= REPORT_SECONDS:
                _report(shared, rank, window, env)
                window, last_report = _Window(), now
        if window.count:
            _report(shared, rank, window, env)
    finally:
        env.close()


def _report(shared: Shared, rank: int, window: _Window, env: VecEnv) -> None:
    returns, lengths = env.pop_episodes()
    payload = window.summary()
    payload.update(episode_returns=returns, episode_lengths=lengths)
    shared.reports.put(("stats", rank, payload))


def _shutdown(stop: Any, processes: list[Any], reports: Any) -> None:
    """Stop the workers: set the Event, join with a deadline, terminate what is left.

    The queue is drained while joining: a process that has put data on a Queue only exits once
    its feeder thread has flushed it into the pipe.
    """
    stop.set()
    deadline = time.monotonic() + JOIN_SECONDS
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        _drain(reports)
        for p in processes:
            p.join(timeout=0.05)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=1.0)
        if p.is_alive():
            p.kill()
            p.join(timeout=1.0)


def _drain(reports: Any) -> list[Any]:
    messages = []
    while True:
        try:
            messages.append(reports.get_nowait())
        except (queue_module.Empty, OSError, ValueError):
            return messages


# --- the main-process side ------------------------------------------------------------------
class A3C(ActorCriticInference, Algorithm):
    """The trainer-facing side: owns the shared model, starts and stops the workers."""

    # How workers build their env: a module-level function so that 'spawn' can pickle it.
    env_factory: Callable[..., VecEnv] = staticmethod(make_vec_env)

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_actor_critic_env("a3c", obs_space, action_space)

    def __init__(self, cfg: A3CConfig, ctx: Context) -> None:
        if ctx.cfg.device.name == "cuda":
            raise UserError(
                "algo=a3c runs on the CPU (workers share the model in CPU memory); "
                "use device=cpu or device=auto"
            )
        self.cfg, self.ctx = cfg, ctx
        self.num_workers = cfg.workers
        # every worker may finish the rollout it started when the budget runs out
        check_iteration_fits(
            ctx, "a3c", cfg.n_steps * self.num_workers, "algo.n_steps x algo.num_workers"
        )
        env = ctx.env
        self.action_space = env.single_action_space
        self.net = build_actor_critic(
            env.single_observation_space, env.single_action_space, ctx.cfg.network
        )
        optimizer = make_optimizer(
            self.net.parameters(), cfg.optimizer, cfg.lr, cfg.rms_alpha, cfg.optimizer_eps
        )
        optimizer.flat.share_memory_()  # the model's weights are views into this buffer
        optimizer.share_memory()
        mp_context = mp.get_context("spawn")
        self.shared = Shared(
            optimizer=optimizer,
            counter=mp_context.Value("q", 0),
            updates=torch.zeros(self.num_workers, dtype=torch.int64).share_memory_(),
            stop=mp_context.Event(),
            reports=mp_context.Queue(),
        )
        self._mp = mp_context
        self.processes: list[Any] = []
        self._reported_steps = 0
        self._episode_returns: list[np.ndarray] = []
        self._episode_lengths: list[np.ndarray] = []
        self._histograms: dict[str, np.ndarray] = {}
        self._closed = False
        # Also stops the workers when the run ends by an exception (Ctrl-C, an eval error) or at
        # interpreter exit; runs once.
        self._finalizer = weakref.finalize(
            self, _shutdown, self.shared.stop, self.processes, self.shared.reports
        )

    # --- workers ------------------------------------------------------------------------------
    def _start(self) -> None:
        # Workers are started with SIGINT ignored: an ignored signal stays ignored across exec,
        # and Python then installs no KeyboardInterrupt handler, so a Ctrl-C that reaches the
        # process group while a worker is still importing cannot end it with a traceback. (A
        # Ctrl-C in the few milliseconds of this loop is ignored by the main process too.)
        if threading.current_thread() is not threading.main_thread():
            self._start_workers()  # signal handlers can only be set from the main thread
            return
        # getsignal is None for a handler set outside Python: Python's default then
        previous = signal.getsignal(signal.SIGINT) or signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._start_workers()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _start_workers(self) -> None:
        root = self.ctx.cfg
        for rank in range(self.num_workers):
            spec = WorkerSpec(
                rank=rank,
                cfg=self.cfg,
                env_cfg=root.env,
                network_cfg=root.network,
                seed=root.seed + 7919 * (rank + 1),
                total_steps=root.total_steps,
                parent_pid=os.getpid(),
                env_factory=type(self).env_factory,
                flush_denormal=root.device.flush_denormal,
            )
            process = self._mp.Process(
                target=worker_main,
                args=(spec, self.shared),
                name=f"a3c-worker-{rank}",
                daemon=True,
            )
            process.start()
            self.processes.append(process)

    def close(self) -> None:
        """Stop and join the workers (idempotent); keeps what they reported on the way out."""
        if self._closed:
            return
        self._closed = True
        self.shared.stop.set()
        deadline = time.monotonic() + JOIN_SECONDS
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            self._poll(0.05)
        self._finalizer()  # terminates anything still alive
        for message in _drain(self.shared.reports):
            self._handle(message)

    def worker_updates(self) -> list[int]:
        """Updates each worker has applied to the shared model."""
        return [int(n) for n in self.shared.updates]

    # --- the trainer loop's side --------------------------------------------------------------
    def iterate(self) -> int:
        if not self.processes:
            self._start()
        if not self._closed:
            self._poll(POLL_SECONDS)
            self._check_workers()
            if self.shared.counter.value >= self.ctx.cfg.total_steps:
                self.close()
        steps = self.shared.counter.value - self._reported_steps
        self._reported_steps += steps
        return steps

    def _poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.shared.reports.get(timeout=remaining)
            except queue_module.Empty:
                return
            self._handle(message)

    def _handle(self, message: tuple[str, int, Any]) -> None:
        kind, rank, payload = message
        if kind == "error":
            self._fail(f"a3c worker {rank} failed: {payload}")
        if kind != "stats":
            return
        rec = self.ctx.recorder
        record_losses(rec, payload["policy_loss"], payload["value_loss"], payload["entropy"])
        rec.scalar(tags.LEARNING_RATE, payload["learning_rate"])
        rec.scalar(tags.GRAD_NORM, payload["grad_norm"])
        for tag, key in (
            (tags.V_MEAN, "v_mean"), (tags.Q_MEAN, "q_mean"),
            (tags.ADVANTAGE_MEAN, "advantage_mean"), (tags.ADVANTAGE_STD, "advantage_std"),
            (tags.EXPLAINED_VARIANCE, "explained_variance"),
        ):  # fmt: skip
            rec.scalar(tag, payload[key])
        self._histograms = {
            tags.Q_HISTOGRAM: payload["q_samples"],
            tags.V_HISTOGRAM: payload["v_samples"],
            tags.ADVANTAGE_HISTOGRAM: payload["advantage_samples"],
        }
        if len(payload["episode_returns"]):
            self._episode_returns.append(payload["episode_returns"])
            self._episode_lengths.append(payload["episode_lengths"])

    def _check_workers(self) -> None:
        for rank, process in enumerate(self.processes):
            code = process.exitcode
            if code is not None and code != 0:
                # Its error report may still be in flight: give it a moment to arrive.
                self._poll(0.5)
                self._fail(f"a3c worker {rank} died with exit code {code}")
        if all(p.exitcode is not None for p in self.processes) and (
            self.shared.counter.value < self.ctx.cfg.total_steps
        ):
            self._fail("every a3c worker exited before the step budget was used")

    def _fail(self, message: str) -> None:
        self._closed = True
        self._finalizer()
        raise WorkerError(message)

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Episodes the workers finished since the last call (the loop prefers this to its env)."""
        if not self._episode_returns:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        returns = np.concatenate(self._episode_returns).astype(np.float64)
        lengths = np.concatenate(self._episode_lengths).astype(np.int64)
        self._episode_returns.clear()
        self._episode_lengths.clear()
        return returns, lengths

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _, _ = self.net.act(obs_to_tensor(obs, torch.device("cpu")), deterministic)
        return to_env_actions(actions, self.action_space)

    def diagnostics(self) -> None:
        for tag, values in self._histograms.items():
            if values.size and np.isfinite(values).all():
                self.ctx.recorder.histogram(tag, values)

    # --- checkpoint -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # Workers keep writing while this copies: the snapshot may mix two updates (Hogwild).
        return {
            "net": {k: v.clone() for k, v in self.net.state_dict().items()},
            "optimizer": self.shared.optimizer.state_dict(),
            "steps": int(self.shared.counter.value),
            "updates": self.shared.updates.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])  # copies into the shared tensors in place
        self.shared.optimizer.load_state_dict(state["optimizer"])
        self.shared.counter.value = int(state["steps"])
        self._reported_steps = int(state["steps"])
        saved = state["updates"]
        if saved.numel() == self.num_workers:
            self.shared.updates.copy_(saved)
