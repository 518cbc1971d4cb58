"""Tuned presets: published (or measured) hyperparameters for an algorithm on an environment.

A preset is a file `rltrain/tuned/<name>.yaml` that says which algorithms and which
environments it is for, where its numbers come from, and the settings themselves:

    source: RL Zoo                 # printed in the run's `preset:` line
    algo: [ppo]                    # algo.name values
    env: [CartPole-v1]             # env keys: the gymnasium id (env.id), or the env name of
                                   # rltrain's own envs (gridworld, traffic_light) and `atari`
    settings: {total_steps: ..., env: {...}, algo: {...}, network: {...}}

Presets are keyed by what they tune, the env id, not by the config option that named the env, so
`env=gym env.id=CartPole-v1` and `env=cartpole` get the same one. `preset=auto` (the default)
applies the preset for (algo.name, env key) if there is one, `preset=none` none, `preset=NAME`
that file. A preset sets a key unless the command line did (`algo.lr=...`, a swept value, or a
config file the command line adds, such as `+search=...`), exactly where the old
`optional tuned` defaults entry sat in Hydra's order. The run's config records which preset it
got, so `rltrain resume` and `eval` read back the very values it trained with.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rltrain.config.schema import Config
from rltrain.errors import UserError

AUTO, NONE = "auto", "none"
_GROUPS = ("algo", "env", "network", "device", "logger")  # `group=option` chooses, sets no key
_TOP_LEVEL = {f.name for f in fields(Config)} - set(_GROUPS)


@dataclass(frozen=True)
class Preset:
    name: str  # the file's stem: preset=<name>
    source: str
    algos: tuple[str, ...]
    envs: tuple[str, ...]
    settings: dict[str, Any]

    def describe(self) -> str:
        return f"tuned/{self.name} ({self.source})"


def _conf_dir() -> Path:
    return Path(str(resources.files("rltrain.conf")))


def presets_dir() -> Path:
    """rltrain/tuned/: package data beside the Hydra configs, not a Hydra group (presets are
    chosen with `preset=`, not composed as options)."""
    return Path(str(resources.files("rltrain"))) / "tuned"


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value if isinstance(value, list | tuple) else [value]))


class _PresetLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's C parser (libyaml) with the safe constructor: parsing every preset takes about
    3 ms instead of the 60 ms of OmegaConf.load, which every `rltrain --cfg job`, `rltrain list`
    and run start pays. One resolver is added so that values read as OmegaConf reads them:
    YAML 1.1 wants a dot in a float, so plain PyYAML reads `1e-4` as a string."""


_PresetLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),  # 1e-4, 3E5: a mantissa without a dot
    list("-+0123456789"),
)


def read_yaml(path: Path) -> Any:
    """A YAML file as plain Python values, numbers typed as OmegaConf types them."""
    return yaml.load(path.read_text(), Loader=_PresetLoader)  # a SafeLoader: builds no objects


@functools.cache
def load_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for path in sorted(presets_dir().glob("*.yaml")):
        raw = read_yaml(path)
        if not isinstance(raw, dict) or not {"source", "algo", "env", "settings"} <= set(raw):
            raise UserError(f"{path} is not a preset (it needs source, algo, env and settings)")
        settings = raw["settings"] or {}
        presets[path.stem] = Preset(
            path.stem, str(raw["source"]), _names(raw["algo"]), _names(raw["env"]), settings
        )
    return presets


def env_key(env: Mapping[str, Any]) -> str:
    """What presets are keyed by: `atari` for any ALE game, `recommender/<view>` for the
    recommender, `text/<task>` for the token MDP, `module:Class` for an env.entry_point, else the
    gymnasium id, else (rltrain's own envs, which have no id) the env's name."""
    name = str(env.get("name"))
    if name == "atari":
        return "atari"
    if name == "recommender":  # presets differ per view: recommender/tabular, recommender/features
        return f"recommender/{env.get('view', 'tabular')}"
    if name == "text":  # each task has its own budget
        return f"text/{env.get('task', 'sort')}"
    if env.get("entry_point"):  # your own class: no preset knows it
        return str(env.get("entry_point"))
    env_id = env.get("id")
    # `module:Id-v0` is the id Id-v0 once the module registered it
    return str(env_id).rpartition(":")[2] if env_id else name


def find_preset(algo: str, key: str) -> Preset | None:
    """The preset for algo.name `algo` on env key `key` (a test keeps them unambiguous)."""
    for preset in load_presets().values():
        if algo in preset.algos and key in preset.envs:
            return preset
    return None


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'algo': {'lr': 1}} -> {'algo.lr': 1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _group_file_keys(group: str, option: str) -> set[str]:
    """The keys a config file that the command line appends (`+search=ppo_cartpole`) sets."""
    path = _conf_dir() / group / f"{option}.yaml"
    if not path.is_file():
        return set()
    text = path.read_text()
    loaded = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(loaded, dict):
        return set()
    body = {str(k): v for k, v in loaded.items() if k not in ("defaults", "hydra")}
    if "@package _global_" not in text:
        body = {group.replace("/", "."): body}
    return set(flatten(body))


def command_line_keys(overrides: Iterable[str]) -> set[str]:
    """The config keys the command line sets: value overrides (`algo.lr=1e-3`, `seed=1`,
    `+algo.x=1`, `~key`) and the keys of config files it appends (`+search=...`). Group choices
    (`algo=dqn`, `env=gym`) only choose which preset applies."""
    keys: set[str] = set()
    for override in overrides:
        text = str(override)
        appended = text.startswith("+") and not text.startswith("++")
        key, _, value = text.lstrip("~+").partition("=")
        if "." in key or key in _TOP_LEVEL:
            keys.add(key)
        elif appended and "/" not in key and value:
            keys |= _group_file_keys(key, value)
    return keys


def apply_preset(node: DictConfig, overrides: Iterable[str]) -> str:
    """Apply the preset `node.preset` selects to `node`, in place, below the command line's keys;
    `node.preset` then names the preset applied (or none). Returns the run's `preset:` line."""
    choice = str(node.get("preset", AUTO))
    presets = load_presets()
    algo, key = str(node.algo.name), env_key(node.env)
    if choice == NONE:
        return "preset: none (preset=none: the schema defaults)"
    if choice == AUTO:
        preset = find_preset(algo, key)
    elif choice in presets:
        preset = presets[choice]
    else:
        known = ", ".join(presets)
        raise UserError(f"preset={choice} is not known; use auto, none or one of: {known}")
    if preset is None:
        node.preset = NONE
        return f"preset: none (no tuned preset for algo={algo} on {key}: the schema defaults)"
    taken = command_line_keys(overrides)
    for name, value in flatten(preset.settings).items():
        if any(name == t or name.startswith(t + ".") for t in taken):
            continue
        try:
            OmegaConf.update(node, name, value, merge=False)
        except OmegaConfBaseException as error:
            raise UserError(
                f"preset {preset.describe()} sets {name}={value}, which this config rejects "
                f"({str(error).splitlines()[0]}); fix rltrain/tuned/{preset.name}.yaml"
            ) from None
    node.preset = preset.name
    return f"preset: {preset.describe()}"
