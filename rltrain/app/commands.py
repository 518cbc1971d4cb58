"""The subcommands other than train: resume, eval, list, summary, board."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

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

    try:
        loaded = OmegaConf.load(path)
        algo_name, env_name = loaded.algo.name, loaded.env.name
    except Exception as error:  # a damaged or foreign YAML file
        raise UserError(
            f"{path} is not a readable rltrain config ({type(error).__name__})"
        ) from None
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


def resume_run(run_dir: Path) -> None:
    node = load_run_config(run_dir)
    from rltrain.runner.loop import train

    if not (run_dir / "checkpoints").is_dir():
        raise UserError(f"{run_dir} has no checkpoints/ to resume from")
    summary = run_dir / "summary.json"
    if summary.is_file():
        done = json.loads(summary.read_text())
        if done.get("steps", 0) >= node.total_steps:
            raise UserError(
                f"{run_dir} already finished ({done['steps']:,} steps); nothing to resume"
            )
    print(f"resuming {run_dir}", flush=True)
    train(node, run_dir, resume=True)


def build_agent(run_dir: Path, which: str) -> tuple[Any, Any, dict[str, Any]]:
    """(algorithm with loaded weights, typed config, checkpoint) of a run."""
    node = load_run_config(run_dir)  # first: a wrong path fails before torch is imported
    from rltrain.algos.base import Context
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
    if which == "last":
        state, _ = ckpt.load_latest(directory)
    else:
        state = ckpt.load(directory / names[which])
    if (state["algo"], state["env"]) != (cfg.algo.name, cfg.env.name):
        raise UserError(
            f"checkpoint is from algo={state['algo']} env={state['env']}, "
            f"run is algo={cfg.algo.name} env={cfg.env.name}"
        )
    import torch

    rng = seed_everything(cfg.seed)
    configure_denormals(cfg.device)  # the policy acts with the float mode it trained with
    env = make_vec_env(cfg.env, num_envs=1, seed=cfg.seed, training=False)
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
        try:
            algo.load_state_dict(state["algo_state"])
        except ckpt.STATE_LOAD_ERRORS as error:
            # Weights of another shape or layout: a checkpoint written by an older rltrain, or a
            # config edited after training. A user-supplied file, so one line, no traceback.
            raise ckpt.does_not_fit(directory, cfg.algo.name, error) from error
    finally:
        env.close()
    return algo, cfg, state


def evaluate_run(
    run_dir: Path, episodes: int, which: str, video: bool, deterministic: bool, seed: int
) -> None:
    if episodes < 1:
        raise UserError(f"--episodes {episodes} must be at least 1")
    algo, cfg, state = build_agent(run_dir, which)
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


def list_groups(group: str | None) -> None:
    root = Path(str(resources.files("rltrain.conf")))
    # nested groups too (hydra/launcher): every directory that holds options
    groups = sorted(
        {str(p.parent.relative_to(root)) for p in root.glob("*/**/*.yaml")
         if not p.parent.name.startswith("_")}
    )
    if group is not None and group not in (*groups, "tuned"):
        raise UserError(f"no config group '{group}'; groups are: {', '.join(groups)}, tuned")
    for name in [group] if group else groups:
        if name == "tuned":
            continue
        print(f"{name}:")
        for option in sorted((root / name).glob("*.yaml")):
            print(f"  {option.stem:<22} {_option_description(option)}")
    if group in (None, "tuned"):
        list_presets()
    if group is None:
        print(
            "choose with group=option, e.g. `rltrain algo=dqn env=cartpole`;"
            " see every key with `rltrain --cfg job`"
        )


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


def start_board(directory: Path, port: int) -> None:
    if not directory.is_dir():
        raise UserError(
            f"{directory} does not exist; train something first (rltrain) or give a directory"
        )
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(directory),
        "--port",
        str(port),
    ]
    print(f"TensorBoard on http://localhost:{port} (Ctrl-C stops it)", flush=True)
    try:
        subprocess.run(command, check=False)
    except KeyboardInterrupt:
        pass
