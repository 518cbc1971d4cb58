"""The one trainer loop: step counting, log / eval / checkpoint cadence, SPS, signals, summary.

Every algorithm family plugs in through `Algorithm.iterate()`; nothing here knows about losses.
"""

from __future__ import annotations

import json
import signal
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rltrain import tags
from rltrain.algos.base import REPLAY_STATE, Algorithm, Context
from rltrain.algos.registry import ALGORITHMS, algorithm_class
from rltrain.algos.value_estimates import value_chart_layout
from rltrain.atomic_write import write_text_atomic
from rltrain.blocks import random_state
from rltrain.config.run_overrides import read_run_overrides
from rltrain.config.schema import Config
from rltrain.config.validate import typed_config
from rltrain.envs.factory import ExactReturn, env_baselines, exact_return_hook, make_vec_env
from rltrain.errors import Interrupted, NonFiniteError, UserError
from rltrain.logging import HParam, Recorder
from rltrain.networks.builders import is_image_space
from rltrain.runner import checkpoint as ckpt
from rltrain.runner.device import (
    configure_denormals,
    configure_threads,
    seed_everything,
    select_device,
)
from rltrain.runner.evaluate import evaluate
from rltrain.runner.progress import Progress
from rltrain.runner.run_lock import run_lock
from rltrain.trackers import chosen_backends, make_trackers, require_backend_packages

# logger.video: each evaluation's whole game is an MP4 in <run>/videos; TensorBoard gets a short
# clip of it (every other frame of the first 2 x 150: 20 s of Atari play shown at 15 fps)
VIDEO_CLIP_FRAMES = 150
VIDEO_CLIP_FPS = 15.0


class StopFlag:
    """Turns the first SIGINT/SIGTERM into a flag checked between iterations (so the checkpoint
    is consistent); a second signal interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some launchers): keep the defaults
                pass
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def job_label() -> str:
    """`#<job number> ` in a Hydra multirun (parallel jobs' lines interleave), else ''."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return ""
    return f"#{HydraConfig.get().job.num} "


def config_params(node: DictConfig) -> dict[str, Any]:
    """The config as flat `key: value` pairs of plain values (HParams, trackers' params)."""
    flat = flatten(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    return {k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}


def hparam_values(node: DictConfig, overrides: Sequence[str]) -> dict[str, HParam]:
    """What HParams shows of a run: the keys its command line set or its sweep chose (a group
    choice such as `algo=dqn` by its option's name), each with its composed value and type
    (lists as text), and the tuned preset it ran with; not the ~40 keys of the whole config,
    among which the swept one hides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values: dict[str, HParam] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if override.is_delete() or key.startswith(("hydra.", "logger.")):
            continue  # where the run writes and what it shows do not change what it learns
        value = OmegaConf.select(node, key, default=None)
        if isinstance(value, DictConfig) or value is None:  # a group: the option chosen
            values[key] = str(override.get_value_element_as_str())
        elif isinstance(value, (bool, int, float, str)):
            values[key] = value
        else:  # a list
            values[key] = str(OmegaConf.to_container(value))
    values["preset"] = str(node.get("preset", "none"))
    return values


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'algo': {'lr': 1}} -> {'algo.lr': 1}; lists become strings (for HParams and summaries)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)) or value is None:
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def checkpoint_state(
    algo: Algorithm, cfg: Config, ctx: Context, elapsed: float, best: float, iterations: int,
    rng: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    return {
        "format": ckpt.FORMAT_VERSION,
        "algo": cfg.algo.name,
        "env": cfg.env.name,
        "step": ctx.step,
        "iterations": iterations,
        "elapsed": elapsed,
        "best_eval": best,
        "algo_state": algo.state_dict(),
        "env_state": ctx.env.state_dict(),
        "recorder": ctx.recorder.state_dict(),
        "rng": rng,
        "generator": random_state.generator_state(ctx.rng),
    }


class RngStreams(Protocol):
    """The random streams a run's checkpoint saves and a resume restores (python, numpy, torch)."""

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


class GlobalStreams:
    """A one-seed run draws from the process's global generators."""

    def state(self) -> dict[str, Any]:
        return random_state.rng_state()

    def restore(self, state: dict[str, Any]) -> None:
        random_state.set_rng_state(state)


def train(node: DictConfig, run_dir: Path, resume: bool = False) -> float:
    """Train as configured in `node`, writing into `run_dir`; returns the final eval return.
    The run directory has one writer: its lock is held from before the checkpoint is read."""
    cfg = typed_config(node)
    with run_lock(run_dir):
        return _train(cfg, node, run_dir, resume)


def read_checkpoint(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """The latest checkpoint of `run_dir`, refused when it is of another algorithm or env."""
    saved, _ = ckpt.load_latest(run_dir / "checkpoints")
    if (saved["algo"], saved["env"]) != (cfg.algo.name, cfg.env.name):
        raise UserError(
            f"checkpoint in {run_dir} is from algo={saved['algo']} env={saved['env']}, "
            f"but the run is configured for algo={cfg.algo.name} env={cfg.env.name}"
        )
    return saved


def _train(cfg: Config, node: DictConfig, run_dir: Path, resume: bool) -> float:
    if cfg.algo.name not in ALGORITHMS:
        known = ", ".join(ALGORITHMS)
        raise UserError(f"algo={cfg.algo.name} is not known; choose one of {known}")
    algo_cls = algorithm_class(cfg.algo.name, cfg.env.name)
    device = select_device(cfg.device)
    configure_denormals(cfg.device)
    rng = seed_everything(cfg.seed)
    saved = read_checkpoint(cfg, run_dir) if resume else None

    require_backend_packages(cfg.logger)
    env = make_vec_env(cfg.env, num_envs=cfg.env.num_envs, seed=cfg.seed, training=True)
    recorder: Recorder | None = None
    try:
        algo_cls.check_env(env.single_observation_space, env.single_action_space)
        configure_threads(cfg.device, is_image_space(env.single_observation_space))
        recorder = make_recorder(cfg, node, run_dir, saved, resume)
        ctx = Context(cfg=cfg, env=env, device=device, recorder=recorder, rng=rng, run_dir=run_dir)
        algo: Algorithm = algo_cls(cfg.algo, ctx)
        run = SeedRun(algo, cfg, node, ctx, run_dir, saved, GlobalStreams())
        with StopFlag() as stop:
            try:
                while not run.done():
                    run.advance(algo.iterate())
                    if stop.signum is not None:
                        raise run.interrupted(stop.signum, f"rltrain resume {run_dir}")
            finally:
                run.progress.close()
            return run.finish()
    finally:
        if recorder is not None:
            recorder.close()
        env.close()


def make_recorder(
    cfg: Config, node: DictConfig, run_dir: Path, saved: dict[str, Any] | None, resume: bool
) -> Recorder:
    return Recorder(
        run_dir,
        enabled="tensorboard" in chosen_backends(cfg.logger),
        # Events at the checkpoint's own step were written before it was saved; only later
        # ones are stale.
        purge_step=saved["step"] + 1 if saved else None,
        trackers=make_trackers(cfg.logger, run_dir, config_params(node), resume),
    )


class SeedRun:
    """One run's side of the trainer loop, around the iterations its algorithm runs: the step
    count, the log / eval / checkpoint cadence, the episode curves, the final evaluation and
    summary.json. A one-seed run drives one (`_train`); a population (`parallel_seeds`,
    `train_population`) drives one per seed after each batched iteration of all the seeds.
    """

    def __init__(
        self,
        algo: Algorithm,
        cfg: Config,
        node: DictConfig,
        ctx: Context,
        run_dir: Path,
        saved: dict[str, Any] | None,
        streams: RngStreams,
        description: str | None = None,
        show_progress: bool = True,
    ) -> None:
        self.algo, self.cfg, self.node, self.ctx, self.rec = algo, cfg, node, ctx, ctx.recorder
        self.run_dir, self.streams = run_dir, streams
        self.iterations, self.elapsed_before, self.best = 0, 0.0, -float("inf")
        if saved is not None:
            self._restore(saved)
        self.rec.custom_scalars(value_chart_layout(algo.value_tags))
        self.checkpoint_dir = run_dir / "checkpoints"
        self.log_every = max(1, cfg.logger.log_interval)
        self.next_log = (ctx.step // self.log_every + 1) * self.log_every
        self.next_eval = _next(ctx.step, cfg.eval_interval)
        self.next_ckpt = _next(ctx.step, cfg.checkpoint_interval)
        self.recent: deque[float] = deque(maxlen=10)
        self.start_time, self.start_step = time.perf_counter(), ctx.step
        if description is None:
            description = f"{job_label()}{cfg.algo.name}/{cfg.env.name}"
        mode = cfg.logger.progress if show_progress else "none"  # a population shows one seed
        self.progress = Progress(mode, cfg.total_steps, ctx.step, description)
        self.baselines: dict[str, float] | None = None  # the env's reference scores, once
        self.exact_return: ExactReturn | None = None  # and its exact scoring of a policy, if any
        # (step, returns, exact return) of the latest evaluation
        self.last_eval: tuple[int, np.ndarray, float | None] | None = None

    def _restore(self, saved: dict[str, Any]) -> None:
        cfg, ctx, run_dir = self.cfg, self.ctx, self.run_dir
        if saved.get("env_state") is not None:
            try:
                ctx.env.load_state_dict(saved["env_state"])
            except ckpt.STATE_LOAD_ERRORS as error:
                raise ckpt.does_not_fit(run_dir / "checkpoints", cfg.env.name, error) from error
        # the counters first: an algorithm's load_state_dict may read ctx.step (schedules)
        ctx.step, self.iterations = int(saved["step"]), int(saved["iterations"])
        try:
            self.algo.load_state_dict(saved["algo_state"])
        except ckpt.STATE_LOAD_ERRORS as error:
            raise ckpt.does_not_fit(run_dir / "checkpoints", cfg.algo.name, error) from error
        try:
            self.rec.load_state_dict(saved.get("recorder") or {})
            self.streams.restore(saved["rng"])
            random_state.set_generator_state(ctx.rng, saved["generator"])
        except ckpt.STATE_LOAD_ERRORS as error:
            # a hand-edited or foreign checkpoint whose RNG or logger state is malformed
            raise UserError(
                f"checkpoint in {run_dir / 'checkpoints'} is damaged: its random-number or "
                f"logger state cannot be restored ({type(error).__name__}: {str(error)[:120]})"
            ) from error
        self.elapsed_before, self.best = float(saved["elapsed"]), float(saved["best_eval"])

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start_time

    def done(self) -> bool:
        return self.ctx.step >= self.cfg.total_steps or self.algo.finished

    def check_finite(self) -> None:
        """Stop before a NaN/inf can reach a checkpoint: the last one written stays good."""
        tag = self.rec.first_non_finite()
        if tag is not None:
            last = self.checkpoint_dir / ckpt.LAST
            where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
            raise NonFiniteError(f"non-finite {tag} at step {self.ctx.step:,}; stopped ({where})")

    def save(self, path_name: str = ckpt.LAST) -> None:
        self.check_finite()
        # Events first: once a checkpoint at step S exists, every event up to S must be on disk,
        # since a resume from it purges only the later ones (a kill right after the save would
        # otherwise lose the writer's queue, up to flush_secs of points).
        self.rec.flush_events()
        state = checkpoint_state(
            self.algo, self.cfg, self.ctx, self.elapsed(), self.best, self.iterations,
            self.streams.state(),
        )  # fmt: skip
        if path_name == ckpt.BEST:
            # best.pt is for evaluation and export, which need the weights, not the replay
            # buffer (a resume reads last.pt): it stays megabytes beside a large buffer
            state["algo_state"].pop(REPLAY_STATE, None)
        ckpt.save_atomic(
            state, self.checkpoint_dir / path_name, keep_previous=path_name == ckpt.LAST
        )

    def run_eval(self) -> tuple[np.ndarray, float | None]:
        """(returns of the evaluation episodes, exact expected return where the env has one)."""
        cfg, rec, algo, step = self.cfg, self.rec, self.algo, self.ctx.step
        returns = evaluate(
            algo.act, cfg.env, cfg.eval_episodes, cfg.seed + self.iterations,
            epsilon=cfg.eval_epsilon,
        )  # fmt: skip
        rec.write(tags.EVAL_RETURN_MEAN, float(returns.mean()), step)
        rec.write(tags.EVAL_RETURN_STD, float(returns.std()), step)
        if self.baselines is None:
            self.baselines = env_baselines(cfg.env)
            self.exact_return = exact_return_hook(cfg.env)
        for name, value in self.baselines.items():  # flat lines beside the eval curve
            rec.write(tags.EVAL_BASELINE_PREFIX + name, value, step)
        exact = None
        if self.exact_return is not None and cfg.eval_epsilon == 0.0:
            exact = self.exact_return(lambda obs: algo.act(obs, True))
            if exact is not None:
                rec.write(tags.EVAL_RETURN_EXACT, exact, step)
        if cfg.logger.video:
            from rltrain.envs.video import read_video_frames
            from rltrain.runner.video import record_episodes

            ((path, _),) = record_episodes(
                algo.act, cfg.env, self.run_dir / "videos", 1, cfg.seed, True,
                prefix=f"step{step}-", epsilon=cfg.eval_epsilon,
            )  # fmt: skip
            # the clip in TensorBoard: the first VIDEO_CLIP_FRAMES frames, every other one
            frames = read_video_frames(path, max_frames=2 * VIDEO_CLIP_FRAMES)[::2]
            rec.video("eval/video", frames, step, fps=VIDEO_CLIP_FPS)
        return returns, exact

    def advance(self, steps: int) -> None:
        """After an iteration of `steps` env steps: its episodes, then whatever falls due."""
        ctx, rec, cfg, algo = self.ctx, self.rec, self.cfg, self.algo
        ctx.step += steps
        self.iterations += 1
        returns, lengths = algo.pop_episodes() or ctx.env.pop_episodes()
        for episode_return, length in zip(returns.tolist(), lengths.tolist(), strict=True):
            rec.write("charts/episodic_return", episode_return, ctx.step)
            rec.write("charts/episodic_length", length, ctx.step)
            self.recent.append(episode_return)
        self.progress.tick(ctx.step, self.recent)
        if ctx.step >= self.next_log or algo.finished:
            self.next_log = (ctx.step // self.log_every + 1) * self.log_every
            elapsed = max(1e-9, time.perf_counter() - self.start_time)
            rec.scalar("charts/sps", (ctx.step - self.start_step) / elapsed)
            algo.diagnostics()
            self.check_finite()
            self.progress.logged(rec.flush(ctx.step, cfg.logger.histograms, cfg.logger.images))
        if self.next_eval is not None and ctx.step >= self.next_eval:
            self.next_eval = _next(ctx.step, cfg.eval_interval)
            self.last_eval = (ctx.step, *self.run_eval())
            score = _score(self.last_eval[1], self.last_eval[2])
            if score > self.best:
                self.best = score
                self.save(ckpt.BEST)
            rec.write(tags.EVAL_BEST_RETURN, self.best, ctx.step)
            self.progress.evaluated(float(self.last_eval[1].mean()), self.best)
        if self.next_ckpt is not None and ctx.step >= self.next_ckpt:
            self.next_ckpt = _next(ctx.step, cfg.checkpoint_interval)
            self.save()

    def interrupted(self, signum: int, how: str) -> Interrupted:
        """Saves the checkpoint on SIGINT/SIGTERM; the error to raise says `how` to continue."""
        self.save()
        name = signal.Signals(signum).name
        return Interrupted(
            f"{name} at step {self.ctx.step:,}: checkpoint saved; continue with `{how}`", signum
        )

    def finish(self) -> float:
        """The final evaluation (unless one just ran), checkpoint and summary.json; returns the
        final mean eval return."""
        ctx, rec, cfg, run_dir = self.ctx, self.rec, self.cfg, self.run_dir
        if rec.pending():
            self.algo.diagnostics()
            self.check_finite()
            rec.flush(ctx.step, cfg.logger.histograms, cfg.logger.images)
        if self.last_eval is not None and self.last_eval[0] == ctx.step:
            _, eval_returns, eval_exact = self.last_eval  # a periodic evaluation ran at this step
        else:
            eval_returns, eval_exact = self.run_eval()
            if _score(eval_returns, eval_exact) > self.best:
                self.best = _score(eval_returns, eval_exact)
                self.save(ckpt.BEST)
            rec.write(tags.EVAL_BEST_RETURN, self.best, ctx.step)
        eval_mean = float(eval_returns.mean())
        self.save()
        elapsed = self.elapsed()
        summary = {
            "algo": cfg.algo.name,
            "env": cfg.env.name,
            "seed": cfg.seed,
            "steps": ctx.step,
            "total_steps": cfg.total_steps,
            "wall_time": round(elapsed, 3),
            "sps": round(ctx.step / max(elapsed, 1e-9), 1),
            "eval_return_mean": eval_mean,
            "eval_return_std": float(eval_returns.std()),
            "eval_episodes": len(eval_returns),
            "eval_return_exact": eval_exact,
            "best_eval_return": self.best,
            "train_return_last10": float(np.mean(self.recent)) if self.recent else None,
            "overrides": read_run_overrides(run_dir),
        }
        # allow_nan=False: a NaN or inf that got this far is a bug to see, not a file to write
        text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
        write_text_atomic(run_dir / "summary.json", text)
        rec.hparams(hparam_values(self.node, summary["overrides"]), tags.HPARAM_METRICS)
        final = {
            key: float(value) for key, value in summary.items()
            if isinstance(value, (int, float)) and key not in ("seed", "total_steps")
        }  # fmt: skip
        rec.finish(final, ctx.step, run_dir)
        print(
            f"done: {ctx.step:,} steps in {elapsed:.1f}s | eval return {eval_mean:.2f} "
            f"± {float(eval_returns.std()):.2f} over {len(eval_returns)} episodes | {run_dir}",
            flush=True,
        )
        return eval_mean


def _score(returns: np.ndarray, exact: float | None) -> float:
    """What picks the best checkpoint: the exact expected return where the env computes one
    (no sampling noise to select on), else the mean evaluation return."""
    return float(returns.mean()) if exact is None else exact


def _next(step: int, interval: int) -> int | None:
    return None if interval <= 0 else (step // interval + 1) * interval
