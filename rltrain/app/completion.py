"""Shell completion: Hydra's own (`rltrain -sc install=bash`), with rltrain's subcommands added.

Hydra completes overrides (`algo.l<Tab>` -> `algo.lr=`) from the composed config; it knows
nothing of the subcommands in front of it, so `rltrain ev<Tab>` offered `eval_episodes=` and
`rltrain train algo.l<Tab>` failed. `complete_line` fills that gap before Hydra answers, and
`install` is what `rltrain --install-completion` does: one line in the shell's startup file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from rltrain.errors import SUBCOMMANDS, UserError

# the groups `rltrain list GROUP` takes
LIST_GROUPS = ("algo", "env", "network", "device", "logger", "search", "hydra/launcher",
               "hydra/sweeper")  # fmt: skip
SHELLS = ("bash", "zsh", "fish")


class Completion(NamedTuple):
    words: list[str]  # rltrain's own candidates for the word being completed
    hydra_line: str | None  # the line Hydra should complete (without the subcommand), or None


def complete_line(line: str) -> Completion:
    """Candidates for the last word of `line` (COMP_LINE: what is typed so far, program first).

    First word: the subcommands that start with it, then Hydra's overrides. After `train`:
    Hydra's overrides, as if `train` were not there. After `list`: its groups. After another
    subcommand (a run directory, an option): nothing, so the shell completes file names.
    """
    words = line.split()
    current = "" if not words or line.endswith((" ", "\t")) else words[-1]
    before = words[1 : len(words) - (1 if current else 0)]  # the words between program and it
    if not before:
        return Completion([s for s in SUBCOMMANDS if s.startswith(current)], line)
    if before[0] == "train":
        program, _, rest = line.partition(" ")
        return Completion([], f"{program} {rest.lstrip().removeprefix('train').lstrip()}")
    if before[0] == "list":
        groups = [g for g in LIST_GROUPS if g.startswith(current)] if len(before) == 1 else []
        return Completion(groups, None)
    if before[0] in SUBCOMMANDS:
        return Completion([], None)
    return Completion([], line)


def startup_line(shell: str) -> tuple[Path, str]:
    """(the shell's startup file, the line that loads rltrain's completion in it)."""
    home = Path.home()
    if shell == "bash":
        return home / ".bashrc", 'eval "$(rltrain -sc install=bash)"'
    if shell == "zsh":  # Hydra's bash completion through zsh's bash compatibility
        return home / ".zshrc", (
            'autoload -Uz compinit bashcompinit && compinit && bashcompinit && '
            'eval "$(rltrain -sc install=bash)"'
        )
    if shell == "fish":
        return home / ".config" / "fish" / "completions" / "rltrain.fish", (
            "rltrain -sc install=fish | source"
        )
    raise UserError(f"no completion for shell '{shell}': use one of {', '.join(SHELLS)}")


def detect_shell() -> str:
    shell = Path(os.environ.get("SHELL", "")).name
    if shell not in SHELLS:
        raise UserError(
            f"cannot tell which shell this is (SHELL={os.environ.get('SHELL', '')!r}): name it, "
            f"e.g. `rltrain --install-completion bash` ({', '.join(SHELLS)})"
        )
    return shell


def install(shell: str) -> str:
    """Add the completion line to the shell's startup file (once); returns what was done."""
    path, line = startup_line(shell)
    try:
        text = path.read_text() if path.is_file() else ""
        if line in text.splitlines():
            return f"{shell} completion is already in {path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as file:
            file.write(("" if not text or text.endswith("\n") else "\n") + line + "\n")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    return f"{shell} completion added to {path}; it works in new shells (or `source {path}`)"
