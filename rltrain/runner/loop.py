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
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rltrain import tags
from rltrain.algos.base import REPLAY_STATE, Algorithm, Context
from rltrain.algos.registry import ALGORITHMS, algorithm_class
from rltrain.algos.value_estimates import value_chart_layout
from rltrain.atomic_write import write_text_atomic
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


class _StopFlag:
    """Turns the first SIGINT/SIGTERM into a flag checked between iterations (so the checkpoint
    is consistent); a second signal interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
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
    algo: Algorithm, cfg: Config, ctx: Context, elapsed: float, best: float, iterations: int
) -> dict[str, Any]:
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
        "rng": ckpt.rng_state(),
        "generator": ckpt.generator_state(ctx.rng),
    }


def train(node: DictConfig, run_dir: Path, resume: bool = False) -> float:
    """Train as configured in `node`, writing into `run_dir`; returns the final eval return.
    The run directory has one writer: its lock is held from before the checkpoint is read."""
    cfg = typed_config(node)
    with run_lock(run_dir):
        return _train(cfg, node, run_dir, resume)


def _train(cfg: Config, node: DictConfig, run_dir: Path, resume: bool) -> float:
    if cfg.algo.name not in ALGORITHMS:
        known = ", ".join(ALGORITHMS)
        raise UserError(f"algo={cfg.algo.name} is not known; choose one of {known}")
    algo_cls = algorithm_class(cfg.algo.name, cfg.env.name)
    device = select_device(cfg.device)
    configure_denormals(cfg.device)
    rng = seed_everything(cfg.seed)
    checkpoint_dir = run_dir / "checkpoints"
    saved: dict[str, Any] | None = None
    if resume:
        saved, _ = ckpt.load_latest(checkpoint_dir)
        if (saved["algo"], saved["env"]) != (cfg.algo.name, cfg.env.name):
            raise UserError(
                f"checkpoint in {run_dir} is from algo={saved['algo']} env={saved['env']}, "
                f"but the run is configured for algo={cfg.algo.name} env={cfg.env.name}"
            )

    require_backend_packages(cfg.logger)
    env = make_vec_env(cfg.env, num_envs=cfg.env.num_envs, seed=cfg.seed, training=True)
    recorder: Recorder | None = None
    try:
        algo_cls.check_env(env.single_observation_space, env.single_action_space)
        configure_threads(cfg.device, is_image_space(env.single_observation_space))
        recorder = Recorder(
            run_dir,
            enabled="tensorboard" in chosen_backends(cfg.logger),
            # Events at the checkpoint's own step were written before it was saved; only later
            # ones are stale.
            purge_step=saved["step"] + 1 if saved else None,
            trackers=make_trackers(cfg.logger, run_dir, config_params(node), resume),
        )
        ctx = Context(cfg=cfg, env=env, device=device, recorder=recorder, rng=rng, run_dir=run_dir)
        algo: Algorithm = algo_cls(cfg.algo, ctx)
        return _run(algo, cfg, node, ctx, recorder, run_dir, saved)
    finally:
        if recorder is not None:
            recorder.close()
        env.close()


def _run(
    algo: Algorithm,
    cfg: Config,
    node: DictConfig,
    ctx: Context,
    rec: Recorder,
    run_dir: Path,
    saved: dict[str, Any] | None,
) -> float:
    iterations, elapsed_before, best = 0, 0.0, -float("inf")
    if saved is not None:
        if saved.get("env_state") is not None:
            try:
                ctx.env.load_state_dict(saved["env_state"])
            except ckpt.STATE_LOAD_ERRORS as error:
                raise ckpt.does_not_fit(run_dir / "checkpoints", cfg.env.name, error) from error
        # the counters first: an algorithm's load_state_dict may read ctx.step (schedules)
        ctx.step, iterations = int(saved["step"]), int(saved["iterations"])
        try:
            algo.load_state_dict(saved["algo_state"])
        except ckpt.STATE_LOAD_ERRORS as error:
            raise ckpt.does_not_fit(run_dir / "checkpoints", cfg.algo.name, error) from error
        try:
            rec.load_state_dict(saved.get("recorder") or {})
            ckpt.set_rng_state(saved["rng"])
            ckpt.set_generator_state(ctx.rng, saved["generator"])
        except ckpt.STATE_LOAD_ERRORS as error:
            # a hand-edited or foreign checkpoint whose RNG or logger state is malformed
            raise UserError(
                f"checkpoint in {run_dir / 'checkpoints'} is damaged: its random-number or "
                f"logger state cannot be restored ({type(error).__name__}: {str(error)[:120]})"
            ) from error
        elapsed_before, best = float(saved["elapsed"]), float(saved["best_eval"])
    rec.custom_scalars(value_chart_layout(algo.value_tags))
    checkpoint_dir = run_dir / "checkpoints"
    log_every = max(1, cfg.logger.log_interval)
    next_log = (ctx.step // log_every + 1) * log_every
    next_eval = _next(ctx.step, cfg.eval_interval)
    next_ckpt = _next(ctx.step, cfg.checkpoint_interval)
    recent: deque[float] = deque(maxlen=10)
    start_time, start_step = time.perf_counter(), ctx.step
    description = f"{job_label()}{cfg.algo.name}/{cfg.env.name}"
    progress = Progress(cfg.logger.progress, cfg.total_steps, ctx.step, description)

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start_time

    def check_finite() -> None:
        """Stop before a NaN/inf can reach a checkpoint: the last one written stays good."""
        tag = rec.first_non_finite()
        if tag is not None:
            last = checkpoint_dir / ckpt.LAST
            where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
            raise NonFiniteError(f"non-finite {tag} at step {ctx.step:,}; stopped ({where})")

    def save(path_name: str = ckpt.LAST) -> None:
        check_finite()
        # Events first: once a checkpoint at step S exists, every event up to S must be on disk,
        # since a resume from it purges only the later ones (a kill right after the save would
        # otherwise lose the writer's queue, up to flush_secs of points).
        rec.flush_events()
        state = checkpoint_state(algo, cfg, ctx, elapsed(), best, iterations)
        if path_name == ckpt.BEST:
            # best.pt is for evaluation and export, which need the weights, not the replay
            # buffer (a resume reads last.pt): it stays megabytes beside a large buffer
            state["algo_state"].pop(REPLAY_STATE, None)
        ckpt.save_atomic(state, checkpoint_dir / path_name, keep_previous=path_name == ckpt.LAST)

    baselines: dict[str, float] | None = None  # the env's reference scores, computed once
    exact_return: ExactReturn | None = None  # and its exact scoring of a policy, if any

    def run_eval() -> tuple[np.ndarray, float | None]:
        """(returns of the evaluation episodes, exact expected return where the env has one)."""
        nonlocal baselines, exact_return
        returns = evaluate(
            algo.act, cfg.env, cfg.eval_episodes, cfg.seed + iterations, epsilon=cfg.eval_epsilon
        )
        rec.write(tags.EVAL_RETURN_MEAN, float(returns.mean()), ctx.step)
        rec.write(tags.EVAL_RETURN_STD, float(returns.std()), ctx.step)
        if baselines is None:
            baselines = env_baselines(cfg.env)
            exact_return = exact_return_hook(cfg.env)
        for name, value in baselines.items():  # flat lines beside the eval curve
            rec.write(tags.EVAL_BASELINE_PREFIX + name, value, ctx.step)
        exact = None
        if exact_return is not None and cfg.eval_epsilon == 0.0:
            exact = exact_return(lambda obs: algo.act(obs, True))
            if exact is not None:
                rec.write(tags.EVAL_RETURN_EXACT, exact, ctx.step)
        if cfg.logger.video:
            from rltrain.envs.video import read_video_frames
            from rltrain.runner.video import record_episodes

            ((path, _),) = record_episodes(
                algo.act, cfg.env, run_dir / "videos", 1, cfg.seed, True,
                prefix=f"step{ctx.step}-", epsilon=cfg.eval_epsilon,
            )  # fmt: skip
            # the clip in TensorBoard: the first VIDEO_CLIP_FRAMES frames, every other one
            frames = read_video_frames(path, max_frames=2 * VIDEO_CLIP_FRAMES)[::2]
            rec.video("eval/video", frames, ctx.step, fps=VIDEO_CLIP_FPS)
        return returns, exact

    sps = 0.0
    # (step, returns, exact return) of the latest evaluation
    last_eval: tuple[int, np.ndarray, float | None] | None = None
    with _StopFlag() as stop:
        try:
            while ctx.step < cfg.total_steps and not algo.finished:
                ctx.step += algo.iterate()
                iterations += 1
                returns, lengths = algo.pop_episodes() or ctx.env.pop_episodes()
                for episode_return, length in zip(returns.tolist(), lengths.tolist(), strict=True):
                    rec.write("charts/episodic_return", episode_return, ctx.step)
                    rec.write("charts/episodic_length", length, ctx.step)
                    recent.append(episode_return)
                progress.tick(ctx.step, recent)
                if ctx.step >= next_log or algo.finished:
                    next_log = (ctx.step // log_every + 1) * log_every
                    sps = (ctx.step - start_step) / max(1e-9, time.perf_counter() - start_time)
                    rec.scalar("charts/sps", sps)
                    algo.diagnostics()
                    check_finite()
                    progress.logged(rec.flush(ctx.step, cfg.logger.histograms, cfg.logger.images))
                if next_eval is not None and ctx.step >= next_eval:
                    next_eval = _next(ctx.step, cfg.eval_interval)
                    last_eval = (ctx.step, *run_eval())
                    score = _score(last_eval[1], last_eval[2])
                    if score > best:
                        best = score
                        save(ckpt.BEST)
                    rec.write(tags.EVAL_BEST_RETURN, best, ctx.step)
                    progress.evaluated(float(last_eval[1].mean()), best)
                if next_ckpt is not None and ctx.step >= next_ckpt:
                    next_ckpt = _next(ctx.step, cfg.checkpoint_interval)
                    save()
                if stop.signum is not None:
                    save()
                    name = signal.Signals(stop.signum).name
                    raise Interrupted(
                        f"{name} at step {ctx.step:,}: checkpoint saved; continue with "
                        f"`rltrain resume {run_dir}`",
                        stop.signum,
                    )
        finally:
            progress.close()

        if rec.pending():
            algo.diagnostics()
            check_finite()
            rec.flush(ctx.step, cfg.logger.histograms, cfg.logger.images)
        if last_eval is not None and last_eval[0] == ctx.step:
            _, eval_returns, eval_exact = last_eval  # a periodic evaluation just ran at this step
        else:
            eval_returns, eval_exact = run_eval()
            if _score(eval_returns, eval_exact) > best:
                best = _score(eval_returns, eval_exact)
                save(ckpt.BEST)
            rec.write(tags.EVAL_BEST_RETURN, best, ctx.step)
        eval_mean = float(eval_returns.mean())
        save()

    summary = {
        "algo": cfg.algo.name,
        "env": cfg.env.name,
        "seed": cfg.seed,
        "steps": ctx.step,
        "total_steps": cfg.total_steps,
        "wall_time": round(elapsed(), 3),
        "sps": round(ctx.step / max(elapsed(), 1e-9), 1),
        "eval_return_mean": eval_mean,
        "eval_return_std": float(eval_returns.std()),
        "eval_episodes": len(eval_returns),
        "eval_return_exact": eval_exact,
        "best_eval_return": best,
        "train_return_last10": float(np.mean(recent)) if recent else None,
        "overrides": _overrides(run_dir),
    }
    # allow_nan=False: a NaN or inf that got this far is a bug to see, not a file to write
    text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    write_text_atomic(run_dir / "summary.json", text)
    rec.hparams(hparam_values(node, summary["overrides"]), tags.HPARAM_METRICS)
    final = {key: float(value) for key, value in summary.items()
             if isinstance(value, (int, float)) and key not in ("seed", "total_steps")}  # fmt: skip
    rec.finish(final, ctx.step, run_dir)
    print(
        f"done: {ctx.step:,} steps in {elapsed():.1f}s | eval return {eval_mean:.2f} "
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


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return [str(item) for item in OmegaConf.load(path)]  # type: ignore[union-attr]
