"""Prints the config reference of docs/config.md (every schema's keys, defaults and comments) as
markdown.

`python scripts/config_reference.py --check docs/config.md` fails when docs/config.md is out of
date; `--write docs/config.md` replaces the block between the reference markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from pathlib import Path

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def field_comments(cls: type) -> dict[str, str]:
    """Comments on a field's line or on the lines just above it, from the source of the class
    and of its dataclass bases (sarsa's keys are documented where TDConfig declares them)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # bases first: a subclass's own comment wins
        if not dataclasses.is_dataclass(klass):
            continue
        pending: list[str] = []
        for line in inspect.getsource(klass).splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                pending.append(stripped.lstrip("# ").strip())
                continue
            match = re.match(r"\s+(\w+): [^=]+=.*?(?:#\s*(.*))?$", line)
            if match:
                text = " ".join(p for p in [*pending, match.group(2) or ""] if p)
                if text:
                    comments[match.group(1)] = text
            pending = []
    return comments


def table(title: str, cls: type) -> str:
    comments = field_comments(cls)
    rows = [f"#### {title}", "", "| key | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = "(required)"
        if dataclasses.is_dataclass(default):
            continue
        meaning = comments.get(field.name, "").replace("|", "\\|")
        rows.append(f"| `{field.name}` | `{default}` | {meaning} |")
    return "\n".join(rows)


def reference() -> str:
    from rltrain.config.algos import ALGO_SCHEMAS
    from rltrain.config.envs import ENV_SCHEMAS
    from rltrain.config.schema import Config, DeviceConfig, LoggerConfig, NetworkConfig

    parts = [
        table("top level", Config),
        table("network", NetworkConfig),
        table("device", DeviceConfig),
        table("logger", LoggerConfig),
    ]
    seen: set[type] = set()
    for cls in ENV_SCHEMAS.values():
        if cls not in seen:
            seen.add(cls)
            users = ", ".join(n for n, c in ENV_SCHEMAS.items() if c is cls)
            parts.append(table(f"env ({users})", cls))
    for name, entry in ALGO_SCHEMAS.items():
        parts.append(table(f"algo={name}: {entry.description}", entry.schema))
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", type=Path)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    block = f"{START}\n{reference()}\n{END}"
    target = args.check or args.write
    if target is None:
        print(block)
        return
    text = target.read_text()
    if START not in text or END not in text:
        sys.exit(f"{target} has no config-reference markers")
    updated = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if args.check:
        if updated != text:
            sys.exit(f"{target}: config reference is out of date; run make docs")
        return
    target.write_text(updated)


if __name__ == "__main__":
    main()
