"""Turns a composed DictConfig into typed dataclasses, with one-line errors for the user."""

from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rltrain.config.schema import Config
from rltrain.errors import UserError

PROGRESS_MODES = ("auto", "bar", "lines", "none")


def one_line(error: BaseException) -> str:
    """The first meaningful line of an OmegaConf/Hydra error, with its full key when known."""
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    full_key = getattr(error, "full_key", None)
    if full_key and full_key not in first:
        first = f"{full_key}: {first}"
    return first


def unknown_key_message(key: str, valid: list[str], schema: Any = None) -> str:
    """'unknown config key' with the closest valid keys, e.g. algo.lr for algo.lrr; for a key the
    schema renamed (`RENAMED_KEYS`), its new name."""
    from rltrain.config.algos import RENAMED_KEYS

    prefix, _, leaf = key.rpartition(".")
    renamed = RENAMED_KEYS.get(schema, {}).get(leaf) if isinstance(schema, type) else None
    if renamed is not None:
        new = f"{prefix}.{renamed}" if prefix else renamed
        return f"'{key}' was renamed to '{new}' (one name per concept in all algorithms): use {new}"
    close = difflib.get_close_matches(leaf, valid, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(f'{prefix}.{c}' if prefix else c for c in close)}?)"
    return (
        f"unknown config key '{key}'{hint if close else ''}; "
        "see the valid keys with `rltrain --cfg job`"
    )


def check_known_keys(node: DictConfig, prefix: str = "") -> None:
    """Every key must be a field of its schema dataclass.

    Hydra's `+key=value` opens the struct flag to add a key, and OmegaConf.to_object then sets an
    extra key as a plain attribute of the dataclass: `+algo.lr_typo=1` would train silently with
    the default lr. So look for keys the schemas lack, at every level, before building objects.
    """
    schema = OmegaConf.get_type(node)
    fields = (
        [f.name for f in dataclasses.fields(schema)]
        if schema is not None and dataclasses.is_dataclass(schema)
        else None
    )
    for key in node:
        name = f"{prefix}{key!s}"
        if fields is not None and key not in fields:
            raise UserError(unknown_key_message(name, fields, schema))
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            check_known_keys(child, name + ".")


# Integers past this are no step count, size or seed anything here can use (NumPy and torch take
# 64-bit integers at most): refused before they overflow somewhere deep inside.
MAX_INT = 2**62


def check_numbers(node: Any, prefix: str = "") -> None:
    """Every number in the config is finite (NaN passes every range check: nan <= 0 is false) and
    every integer fits in 64 bits; one line naming the key."""
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else []
    for key, _ in items:
        name = f"{prefix}{key!s}"
        try:
            value = node[key]
        except OmegaConfBaseException:
            continue  # an interpolation error: reported with its key when the config is typed
        if isinstance(value, DictConfig):
            check_numbers(value, name + ".")
            continue
        values = list(value) if isinstance(value, ListConfig) else [value]
        for item in values:
            if isinstance(item, bool):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise UserError(f"{name}={item} is not a finite number; give a finite value")
            if isinstance(item, int) and abs(item) > MAX_INT:
                raise UserError(f"{name}={item} is too large (at most {MAX_INT:.3g})")


def typed_config(node: DictConfig) -> Config:
    """OmegaConf.to_object builds the dataclasses, so each schema's __post_init__ checks ranges."""
    check_known_keys(node)
    check_numbers(node)
    try:
        cfg: Any = OmegaConf.to_object(node)
    except UserError:
        raise
    except OmegaConfBaseException as error:
        cause = error.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(f"invalid configuration: {one_line(error)}") from error
    if not isinstance(cfg, Config):
        raise UserError("the configuration is not an rltrain config (no base_config schema)")
    if cfg.total_steps < 1:
        raise UserError(f"total_steps={cfg.total_steps} must be at least 1")
    if not 0 <= cfg.seed < 2**32 - cfg.num_seeds:
        raise UserError(f"seed={cfg.seed} must be in [0, 2^32 - num_seeds): NumPy seeds are 32-bit")
    if not 0.0 <= cfg.eval_epsilon <= 1.0:
        raise UserError(f"eval_epsilon={cfg.eval_epsilon} must be in [0, 1]")
    for key in ("eval_interval", "checkpoint_interval"):
        if getattr(cfg, key) < 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be >= 0 (0 = only at the end)")
    if cfg.eval_episodes < 1:
        raise UserError(f"eval_episodes={cfg.eval_episodes} must be at least 1")
    if cfg.logger.log_interval < 1:
        raise UserError(f"logger.log_interval={cfg.logger.log_interval} must be at least 1")
    check_text_choice(cfg)  # first: on the text envs it names the env, not the network
    check_network_choice(cfg)
    check_parallel_seeds(cfg)
    # token PPO's rollouts are completions (text, llm); num_envs < 1 is the env factory's one line
    if cfg.algo.name == "ppo" and cfg.env.name not in ("text", "llm") and cfg.env.num_envs >= 1:
        from rltrain.config.algos import check_minibatch_fits

        check_minibatch_fits(cfg.algo.batch_size, cfg.algo.n_steps, cfg.env.num_envs)
    if cfg.logger.progress not in PROGRESS_MODES:
        raise UserError(
            f"logger.progress={cfg.logger.progress} is not known; use {', '.join(PROGRESS_MODES)}"
        )
    if cfg.logger.name not in ("tensorboard", "mlflow", "wandb", "none"):
        raise UserError(
            f"logger={cfg.logger.name} is not known; use tensorboard, mlflow, wandb or none"
        )
    if cfg.logger.wandb_mode not in ("offline", "online"):
        raise UserError(f"logger.wandb_mode={cfg.logger.wandb_mode}: use offline or online")
    from rltrain.trackers import chosen_backends

    chosen_backends(cfg.logger)  # an unknown backend name is one line
    return cfg


def check_parallel_seeds(cfg: Config) -> None:
    """`parallel_seeds=true` is refused, one line naming the key, where the population
    (rltrain/algos/population.py) does not cover the config."""
    if not cfg.parallel_seeds:
        return
    from rltrain.trackers import chosen_backends

    env_id = getattr(cfg.env, "id", None)
    refusal = None
    if cfg.num_seeds < 2:
        refusal = (
            f"trains the num_seeds seeds of a job at once, but num_seeds={cfg.num_seeds}: give "
            "num_seeds=K with K >= 2"
        )
    elif cfg.algo.name not in ("ppo", "a2c", "dqn"):
        refusal = (
            f"exists for algo=ppo, algo=a2c and algo=dqn only, not algo={cfg.algo.name}: leave "
            "parallel_seeds out to train the seeds one after the other"
        )
    elif env_id != "CartPole-v1" or cfg.env.vectorization != "batched" or cfg.env.entry_point:
        refusal = (
            "steps every seed's envs as one batched CartPole-v1: use env=cartpole with "
            f"env.vectorization=batched (not env={cfg.env.name}"
            f"{f' env.id={env_id}' if env_id else ''} env.vectorization={cfg.env.vectorization})"
        )
    elif cfg.network.name not in ("auto", "mlp") or (
        cfg.network.shared_trunk and cfg.algo.name != "dqn"
    ):
        refusal = (
            "stacks two-tower MLPs: use network=mlp (or auto) with network.shared_trunk=false"
        )
    elif cfg.network.dueling and cfg.algo.name == "dqn":
        refusal = "stacks plain MLP Q-networks: use network.dueling=false"
    elif getattr(cfg.algo, "prioritized", False):
        refusal = (
            "replays each seed's buffer uniformly: use algo.prioritized=false (prioritized "
            "replay samples one minibatch at a time, after each update's new priorities)"
        )
    elif getattr(cfg.algo, "normalize_rewards", False):
        refusal = (
            "needs algo.normalize_rewards=false: the reward scaler's statistics are one seed's"
        )
    elif getattr(cfg.algo, "target_kl", None) is not None:
        refusal = (
            "needs algo.target_kl=null: a KL stop would end each seed's epochs at its own time"
        )
    elif set(chosen_backends(cfg.logger)) - {"tensorboard"}:
        refusal = (
            "logs each seed with TensorBoard only: use logger=tensorboard (or logger=none), not "
            f"{', '.join(chosen_backends(cfg.logger))}"
        )
    if refusal is not None:
        raise UserError(f"parallel_seeds=true {refusal}")


def check_network_choice(cfg: Config) -> None:
    """An explicit `network=` the algorithm cannot use is refused, not ignored."""
    from rltrain.config.algos import ALGO_SCHEMAS, BANDIT, TABULAR

    entry = ALGO_SCHEMAS.get(cfg.algo.name)
    chosen = cfg.network.name
    if entry is None or chosen in entry.networks:
        return
    allowed = " or ".join(f"network={n}" for n in entry.networks)
    if entry.networks == BANDIT:
        why = "fits one linear model per arm and builds no neural network"
        other = ""
    elif entry.networks == TABULAR:
        why = "keeps a table of values, one row per state, and builds no neural network"
        other = "; for a neural network use algo=dqn or algo=ppo"
    else:
        why = "trains a neural network"
        other = ""
    raise UserError(
        f"network={chosen} cannot be used by algo={cfg.algo.name}, which {why}: use {allowed} "
        f"(or leave network out){other}"
    )


def check_model_dir(path: str, gguf_file: str | None) -> None:
    """network.path is a directory saved by save_pretrained (config.json, or the GGUF file
    named by network.gguf_file): checked before anything is loaded or any run dir is made."""
    where = Path(path).expanduser()
    if not where.is_dir():
        raise UserError(f"network.path={path} is not a directory with a saved model")
    needed = gguf_file or "config.json"
    if not (where / needed).is_file():
        raise UserError(
            f"network.path={path} has no {needed}: not a model saved with save_pretrained"
            + ("" if gguf_file else " (for a .gguf file set network.gguf_file=NAME)")
        )


def check_text_choice(cfg: Config) -> None:
    """env=text takes the token-level algorithms and the transformer, env=llm the token-level
    algorithms and network=hf, and nothing else takes either."""
    from rltrain.config.algos import TEXT_ALGOS

    env, net, algo = cfg.env.name, cfg.network.name, cfg.algo.name
    if env in ("text", "llm") and algo not in TEXT_ALGOS:
        what = "a token policy on a transformer" if env == "text" else "a language model's policy"
        raise UserError(
            f"algo={algo} cannot train on env={env} ({what}); "
            f"use {' or '.join(f'algo={a}' for a in TEXT_ALGOS)}"
        )
    wanted = {"text": "transformer", "llm": "hf"}.get(env)
    if wanted is not None and net not in ("auto", wanted):
        raise UserError(
            f"network={net} cannot be used on env={env}; use network={wanted} (or leave it out)"
        )
    if env == "llm":
        if not cfg.network.path:
            raise UserError(
                "env=llm needs a model: network=hf network.path=DIR (a directory written by "
                "save_pretrained, with its tokenizer)"
            )
        check_model_dir(cfg.network.path, cfg.network.gguf_file)
        # one model: the env tokenizes and decodes with the model's tokenizer
        cfg.env.tokenizer, cfg.env.gguf_file = cfg.network.path, cfg.network.gguf_file
    if wanted is None and (algo == "grpo" or net in ("transformer", "hf")):
        what = "algo=grpo" if algo == "grpo" else f"network={net}"
        home = "env=llm" if net == "hf" else "env=text"
        raise UserError(f"{what} works on env=text or env=llm only; use {home}")
