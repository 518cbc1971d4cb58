"""One-line explanations of Hydra / OmegaConf composition errors."""

from __future__ import annotations

import dataclasses
import re

from hydra.errors import MissingConfigException, OverrideParseException

from rltrain.config.validate import unknown_key_message
from rltrain.errors import SUBCOMMANDS


def _chain(error: BaseException) -> list[BaseException]:
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)  # type: ignore[arg-type]
    return chain


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def explain(error: BaseException) -> str:
    chain = _chain(error)
    for item in chain:
        if isinstance(item, MissingConfigException):
            return _missing_option(item)
        if isinstance(item, OverrideParseException):
            override = str(item.override)
            if re.fullmatch(r"[A-Za-z_][\w-]*", override):
                # a lone word: most likely a mistyped subcommand
                return (
                    f"'{override}' is neither a command ({', '.join(SUBCOMMANDS)}) nor a "
                    "key=value override; see `rltrain --help`"
                )
            return f"cannot parse override '{override}': {_first_line(item)}"
    deepest = chain[-1]
    text = _first_line(deepest)
    merging = re.search(r"Error merging override (\S+?)=(\S*)", _first_line(error))
    if merging and "is not a ListConfig" in text:
        key, value = merging.groups()
        return f"{key}={value} is not a list; write it as {key}=[a,b,...], e.g. [64,64]"
    full_key = getattr(deepest, "full_key", None) or _override_key(chain)
    if "not in struct" in text or ("Key '" in text and "not in" in text):
        # Hydra's own advice here ("use +key=value") is wrong for typed configs: the schemas
        # reject added keys too. Suggest the closest field of the schema instead.
        schema = getattr(deepest, "object_type", None)
        valid = (
            [f.name for f in dataclasses.fields(schema)]
            if schema is not None and dataclasses.is_dataclass(schema)
            else []
        )
        return unknown_key_message(full_key or text, valid, schema)
    converted = re.search(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", text)
    if converted and full_key:
        value, expected = converted.groups()
        hint = " (true or false)" if expected == "Boolean" else ""
        return f"{full_key}={value} is not a valid {expected.lower()}{hint}"
    if "could not be converted" in text or "Value '" in text:
        return f"{full_key}: {text}" if full_key else text
    if "Interpolation" in type(deepest).__name__ or "interpolation" in text.lower():
        return f"bad interpolation{f' in {full_key}' if full_key else ''}: {text}"
    head = _first_line(error)
    return head if deepest is error else f"{head} {text}"


def _override_key(chain: list[BaseException]) -> str | None:
    for item in chain:
        match = re.search(r"override '([^']+)'", str(item))
        if match:
            return match.group(1)
    return None


# Launcher / sweeper options that exist only once their Hydra plugin is installed (rltrain's own
# presets such as hydra/launcher=ray_cluster extend these, so they fail the same way), and the
# rltrain extra that installs each plugin.
_PLUGINS = {
    "hydra/launcher/joblib": ("hydra-joblib-launcher", "sweep"),
    "hydra/launcher/submitit_local": ("hydra-submitit-launcher", "sweep"),
    "hydra/launcher/submitit_slurm": ("hydra-submitit-launcher", "sweep"),
    "hydra/launcher/ray": ("hydra-ray-launcher", "ray"),
    "hydra/launcher/ray_aws": ("hydra-ray-launcher", "ray"),
    "hydra/sweeper/optuna": ("hydra-optuna-sweeper", "sweep"),
}


def _missing_option(error: MissingConfigException) -> str:
    text = str(error)
    match = re.search(r"Could not find '([^']+)'", text)
    missing = match.group(1) if match else (error.missing_cfg_file or "?")
    group, _, option = missing.rpartition("/")
    options = error.options or re.findall(r"^\s+(\S+)$", text, flags=re.M)
    choices = ", ".join(options) if options else ""  # schemas are root configs, no options
    plugin = _PLUGINS.get(f"{group}/{option}")
    if plugin is not None:
        name, extra = plugin
        return (
            f"{group}={option} needs the {name} plugin, which is not installed: "
            f"pip install 'rltrain[{extra}]'"
        )
    if group:
        return f"unknown {group} '{option}'; choose one of: {choices or '(none)'}"
    return _first_line(error)
