"""The subcommands other than train and export: resume, eval, list, summary, board."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from rltrain.errors import UserError


def load_run_config(run_dir: Path) -> DictConfig:
    """The exact composed config of a run, typed again by its schemas."""
    # The directory checks come before the imports: the algorithms pull in gymnasium and torch
    # (seconds of start-up), which a mistyped path should not wait for.
    if not run_dir.is_dir():
        what = "is a file, not a directory" if run_dir.exists() else "does not exist"
        raise UserError(f"{run_dir} {what}; give a run directory such as runs/cartpole/ppo/<time>")
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not an rltrain run directory (no .hydra/config.yaml)")

    from rltrain.config.algos import ALGO_SCHEMAS
    from rltrain.config.envs import ENV_SCHEMAS
    from rltrain.config.schema import Config

    unreadable = UserError(f"{path} is not a readable rltrain config")
    try:
        loaded = OmegaConf.load(path)
    except Exception as error:  # a damaged or foreign YAML file
        raise UserError(f"{unreadable} ({type(error).__name__})") from None
    resolver = _resolver_call(loaded)
    if resolver is not None:
        # A saved config is data: a resolver such as ${oc.env:VAR} would read the environment
        # (or run whatever the resolver does) when eval or resume reads a value.
        key, value = resolver
        raise UserError(
            f"{path} has {key}={value}, a resolver call; a saved config must hold plain values: "
            "replace it with the value the run used"
        )
    try:
        algo_name, env_name = loaded.algo.name, loaded.env.name
    except Exception as error:  # a list, or a config without algo/env names
        raise UserError(f"{unreadable} ({type(error).__name__})") from None
    if algo_name not in ALGO_SCHEMAS or env_name not in ENV_SCHEMAS:
        raise UserError(f"{path} names algo={algo_name} env={env_name}, which this rltrain lacks")
    schema = OmegaConf.structured(Config)
    schema.algo = OmegaConf.structured(ALGO_SCHEMAS[algo_name].schema)
    schema.env = OmegaConf.structured(ENV_SCHEMAS[env_name])
    try:
        merged = OmegaConf.merge(schema, loaded)
    except Exception as error:  # a key or value this rltrain's schemas do not have
        from rltrain.config.errors import explain

        raise UserError(
            f"{path} does not fit this rltrain's config schemas ({explain(error)}); it was edited "
            "or written by another rltrain version: fix that entry, or train a new run"
        ) from None
    assert isinstance(merged, DictConfig)
    return merged


_RESOLVER_CALL = re.compile(r"\$\{\s*[\w.-]+\s*:")


def _resolver_call(node: Any, prefix: str = "") -> tuple[str, str] | None:
    """(key, raw value) of the first value in `node` that calls a resolver (`${name:...}`),
    read without resolving anything; plain references such as ${algo.gamma} pass."""
    from omegaconf import ListConfig

    if isinstance(node, DictConfig):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in node.items_ex(resolve=False)]
    elif isinstance(node, ListConfig):
        items = [(str(i), node._get_node(i)) for i in range(len(node))]
    else:
        return None
    for key, _ in items:
        child = node._get_node(int(key) if isinstance(node, ListConfig) else key)
        name = f"{prefix}{key}"
        if isinstance(child, (DictConfig, ListConfig)):
            found = _resolver_call(child, name + ".")
            if found is not None:
                return found
            continue
        raw = child._value() if child is not None else None
        if isinstance(raw, str) and _RESOLVER_CALL.search(raw):
            return name, raw
    return None


def finished_steps(path: Path) -> int | None:
    """The step count a finished run's summary.json records; None when there is none. A summary
    that is not JSON or has no integer "steps" (damaged, hand-edited) is refused with one line:
    whether the run finished cannot be told from it."""
    if not path.is_file():
        return None
    try:
        done = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        done = None
    steps = done.get("steps") if isinstance(done, dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise UserError(
            f"{path} is damaged (not a JSON object with an integer \"steps\"); delete it to "
            "resume the run from its last checkpoint"
        )
    return steps


def resume_run(run_dir: Path) -> None:
    node = load_run_config(run_dir)
    from rltrain.runner.loop import train

    if node.get("parallel_seeds", False) and int(node.get("num_seeds", 1)) > 1:
        resume_population(node, run_dir)
        return

    if not (run_dir / "checkpoints").is_dir():
        raise UserError(f"{run_dir} has no checkpoints/ to resume from")
    steps = finished_steps(run_dir / "summary.json")
    if steps is not None and steps >= node.total_steps:
        raise UserError(f"{run_dir} already finished ({steps:,} steps); nothing to resume")
    print(f"resuming {run_dir}", flush=True)
    train(node, run_dir, resume=True)


def resume_population(node: Any, job_dir: Path) -> None:
    """A `parallel_seeds` job resumes all its seeds together, from their own checkpoints."""
    from rltrain.runner.population import train_population

    seed_dirs = [job_dir / f"seed_{int(node.seed) + k}" for k in range(int(node.num_seeds))]
    missing = [d.name for d in seed_dirs if not (d / "checkpoints").is_dir()]
    if missing:
        raise UserError(f"{job_dir} has no checkpoints/ in {', '.join(missing)} to resume from")
    if all(finished_steps(d / "summary.json") is not None for d in seed_dirs):
        raise UserError(f"{job_dir} already finished (every seed has its summary.json)")
    print(f"resuming {job_dir} ({len(seed_dirs)} seeds at once)", flush=True)
    nodes = [load_run_config(d) for d in seed_dirs]
    train_population(nodes, seed_dirs, job_dir, resume=True)


class LoadedRun(NamedTuple):
    """A run's algorithm with the weights of one checkpoint, ready to act on the CPU."""

    algo: Any  # an rltrain.algos.base.Algorithm
    cfg: Any  # the typed rltrain.config.schema.Config of the run
    state: dict[str, Any]  # the checkpoint as loaded (step, algo, env, algo_state less its buffer)
    observation_space: Any  # gymnasium spaces of one env
    action_space: Any
    checkpoint: Path


CHECKPOINT_CHOICES = ("last", "best")


def build_agent(run_dir: Path, which: str, file: Path | None = None) -> LoadedRun:
    """The algorithm of `run_dir` with the weights of its `which` (last | best) checkpoint, or of
    the checkpoint `file` when given (a file of that run's checkpoints/)."""
    node = load_run_config(run_dir)  # first: a wrong path fails before torch is imported
    from rltrain.algos.base import REPLAY_STATE, Context
    from rltrain.algos.registry import algorithm_class
    from rltrain.config.validate import typed_config
    from rltrain.envs.factory import make_vec_env
    from rltrain.logging import Recorder
    from rltrain.runner import checkpoint as ckpt
    from rltrain.runner.device import configure_denormals, seed_everything

    cfg = typed_config(node)
    names = {"last": ckpt.LAST, "best": ckpt.BEST}
    if which not in names:
        raise UserError(f"--checkpoint {which}: use last or best")
    directory = run_dir / "checkpoints"
    if file is not None:
        state, path = ckpt.load(file), file
    elif which == "last":
        state, path = ckpt.load_latest(directory)
    else:
        path = directory / names[which]
        state = ckpt.load(path)
    if (state["algo"], state["env"]) != (cfg.algo.name, cfg.env.name):
        raise UserError(
            f"checkpoint is from algo={state['algo']} env={state['env']}, "
            f"run is algo={cfg.algo.name} env={cfg.env.name}"
        )
    import torch

    rng = seed_everything(cfg.seed)
    configure_denormals(cfg.device)  # the policy acts with the float mode it trained with
    # as many env copies as the run had: an algorithm's per-env state in the checkpoint (DQN's
    # replay streams and episode trackers) is sized by them; in this process, not subprocesses
    env_cfg = cfg.env
    if getattr(env_cfg, "vectorization", None) == "async":
        env_cfg = dataclasses.replace(env_cfg, vectorization="sync")
    env = make_vec_env(env_cfg, num_envs=env_cfg.num_envs, seed=cfg.seed, training=False)
    # the thread rule of training (one thread for MLPs): torch's default of every core makes a
    # batch-of-one CNN forward many times slower as soon as another process wants a core
    from rltrain.networks.builders import is_image_space
    from rltrain.runner.device import configure_threads

    configure_threads(cfg.device, is_image_space(env.single_observation_space))
    ctx = Context(
        cfg=cfg,
        env=env,
        device=torch.device("cpu"),
        recorder=Recorder(None, False),
        rng=rng,
        run_dir=None,
    )
    try:
        algo = algorithm_class(cfg.algo.name, cfg.env.name)(cfg.algo, ctx)
        # the counters first, as a resume sets them: schedules (epsilon) read the step
        ctx.step = int(state["step"])
        # acting needs the weights, not the replay buffer of last.pt: not loading it saves the
        # time and the memory of copying a (gigabyte) buffer that evaluation never samples
        state["algo_state"].pop(REPLAY_STATE, None)
        try:
            algo.load_state_dict(state["algo_state"])
        except ckpt.STATE_LOAD_ERRORS as error:
            # Weights of another shape or layout: a checkpoint written by an older rltrain, or a
            # config edited after training. A user-supplied file, so one line, no traceback.
            raise ckpt.does_not_fit(directory, cfg.algo.name, error) from error
    finally:
        env.close()
    return LoadedRun(
        algo, cfg, state, env.single_observation_space, env.single_action_space, path
    )


def evaluate_run(
    run_dir: Path, episodes: int, which: str, video: bool, deterministic: bool, seed: int
) -> None:
    if episodes < 1:
        raise UserError(f"--episodes {episodes} must be at least 1")
    algo, cfg, state, *_ = build_agent(run_dir, which)
    import numpy as np

    paths: list[Path] = []
    if video:
        # the scored episodes are the recorded ones: what the user reads is what the videos show
        from rltrain.runner.video import record_episodes

        recorded = record_episodes(
            algo.act, cfg.env, run_dir / "videos", episodes, seed, deterministic,
            epsilon=cfg.eval_epsilon,
        )  # fmt: skip
        paths = [path for path, _ in recorded]
        returns = np.array([value for _, value in recorded])
    else:
        from rltrain.runner.evaluate import evaluate

        returns = evaluate(
            algo.act, cfg.env, episodes, seed, deterministic=deterministic,
            epsilon=cfg.eval_epsilon,
        )  # fmt: skip
    for index, value in enumerate(returns.tolist()):
        print(f"episode {index + 1:>3}: return {value:.2f}")
    print(
        f"{cfg.algo.name} on {cfg.env.name}, step {state['step']:,}: mean {returns.mean():.2f} "
        f"± {returns.std():.2f} over {len(returns)} episodes"
    )
    from rltrain.envs.factory import env_baselines, exact_return_hook

    baselines = env_baselines(cfg.env)
    if baselines:
        listed = ", ".join(f"{name} {value:.2f}" for name, value in baselines.items())
        agent = f"agent {returns.mean():.2f}"
        hook = exact_return_hook(cfg.env) if deterministic and cfg.eval_epsilon == 0 else None
        exact = hook(lambda obs: algo.act(obs, True)) if hook is not None else None
        if exact is not None:  # the same policy scored without sampling noise
            agent += f" (exact {exact:.2f})"
        print(f"baselines (return per episode): {agent} | {listed}")
    view = algo.terminal_view()
    if view is not None:
        print(view)
    for path in paths:
        print(f"video: {path}")


def _option_description(path: Path) -> str:
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("# @package"):
            return stripped.lstrip("# ").strip()
    return ""


# Hydra's own options of its groups (its core and its plugins): what each does, and the extra
# that installs the plugin when it is missing
HYDRA_OPTIONS: dict[str, dict[str, tuple[str, str | None]]] = {
    "hydra/launcher": {
        "basic": ("Hydra's default: the jobs one after another, in this process", None),
        "joblib": ("the jobs in parallel processes here (hydra.launcher.n_jobs)", "sweep"),
        "submitit_local": ("the jobs as local submitit processes, each with its own log", "sweep"),
        "submitit_slurm": ("the jobs as a SLURM array through submitit", "sweep"),
        "ray": ("the jobs on Ray: a local one, or a cluster (see ray_cluster)", "ray"),
    },
    "hydra/sweeper": {
        "basic": ("Hydra's default: every combination of the comma lists and ranges", None),
        "optuna": ("an Optuna search over interval() and choice() (`rltrain list search`)",
                   "sweep"),
    },
}


def list_groups(group: str | None) -> None:
    root = Path(str(resources.files("rltrain.conf")))
    # nested groups too (hydra/launcher): every directory that holds options
    groups = sorted(
        {str(p.parent.relative_to(root)) for p in root.glob("*/**/*.yaml")
         if not p.parent.name.startswith("_")} | set(HYDRA_OPTIONS)
    )  # fmt: skip
    if group is not None and group not in (*groups, "tuned"):
        raise UserError(f"no config group '{group}'; groups are: {', '.join(groups)}, tuned")
    for name in [group] if group else groups:
        if name == "tuned":
            continue
        print(f"{name}:")
        for option in sorted((root / name).glob("*.yaml")):
            print(f"  {option.stem:<22} {_option_description(option)}")
        if name in HYDRA_OPTIONS:
            if group is None:  # finding the plugins imports Hydra: only when asked for
                print(f"  (Hydra's own options too: `rltrain list {name}`)")
            else:
                _list_hydra_options(name)
    if group in (None, "tuned"):
        list_presets()
    if group is None:
        print(
            "choose with group=option, e.g. `rltrain algo=dqn env=cartpole`;"
            " see every key with `rltrain --cfg job`"
        )


def _list_hydra_options(group: str) -> None:
    """The options Hydra's core and its installed plugins register in `group`, then the known
    plugins that are not installed, with the extra that brings them."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # importing the plugins is what registers their options
    try:
        installed = sorted(
            name.removesuffix(".yaml") for name in ConfigStore.instance().list(group)
            if name.endswith(".yaml")
        )  # fmt: skip
    except OSError:  # ConfigStore's "no such group": nothing of Hydra's here
        installed = []
    known = HYDRA_OPTIONS[group]
    for name in installed:
        what = known.get(name, ("a Hydra plugin's option", None))[0]
        print(f"  {name:<22} {what} (Hydra)")
    for name, (what, extra) in known.items():
        if name not in installed and extra is not None:
            print(f"  {name:<22} {what} (not installed: pip install 'rltrain[{extra}]')")


def list_presets() -> None:
    """The tuned presets: applied by algorithm and env id (`preset=auto`), or by name."""
    from rltrain.config.presets import load_presets

    print("tuned (applied for these algo x env pairs; preset=NAME forces one, preset=none none):")
    for preset in load_presets().values():
        pairs = f"{','.join(preset.algos)} on {','.join(preset.envs)}"
        print(f"  {preset.name:<22} {pairs} ({preset.source})")


def summarize(
    directory: Path, csv_path: Path | None, plot_path: Path | None = None, group: bool = True
) -> None:
    """The sweep summary; see rltrain/app/summary.py."""
    from rltrain.app.summary import summarize as summarize_runs

    summarize_runs(directory, csv_path, plot_path, group)


def start_board(directory: Path, port: int, host: str) -> None:
    """TensorBoard in place of this process (exec, not a child): a signal to this PID stops
    TensorBoard itself, and nothing is left serving after `kill` or Ctrl-C."""
    if not directory.is_dir():
        raise UserError(
            f"{directory} does not exist; train something first (rltrain) or give a directory"
        )
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(directory),
               "--port", str(port), "--host", host]  # fmt: skip
    shown = "localhost" if host in ("localhost", "127.0.0.1") else host
    print(f"TensorBoard on http://{shown}:{port} (Ctrl-C stops it)", flush=True)
    sys.stderr.flush()
    os.execv(sys.executable, command)
