"""`rltrain`: Typer in front of Hydra's own entry point.

Any first argument that is not a subcommand means `train`, and training arguments go to
`hydra.main` untouched (after moving Hydra's flags in front, so they work in any order). That keeps
`-m`, launchers, sweepers, `--cfg job`, `--info` and shell completion exactly as Hydra has them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from rltrain.errors import OUTPUT_DIR_HINT, SUBCOMMANDS, UserError, os_error_advice

# Hydra flags that take a value, and flags whose value is optional (--info [what]).
_VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
_SWITCH_FLAGS = {
    "-m",
    "--multirun",
    "-r",
    "--run",
    "--resolve",
    "-h",
    "--help",
    "--hydra-help",
    "--version",
    "-sc",
    "--shell-completion",
}
_INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}

def fail(message: str, code: int = 2) -> None:
    """One line on stderr, non-zero exit: how every user mistake ends."""
    print(f"rltrain: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def reorder_hydra_args(args: list[str]) -> list[str]:
    """Hydra's argparse wants all flags before the overrides; accept them anywhere.

    Overrides never start with "-" (they are key=value, +key=value, ++key=value or ~key), so
    every argument that does is a flag, `-cd=DIR` and `--cfg=job` forms included; an unknown flag
    moves too, so argparse names it alone instead of it and every override after it.
    """
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0] if arg.startswith("-") else arg
        if name in _VALUE_FLAGS:
            flags.append(arg)
            if "=" not in arg and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        elif name in ("--info", "-i"):
            flags.append(arg)
            if i + 1 < len(args) and args[i + 1] in _INFO_VALUES:
                flags.append(args[i + 1])
                i += 1
        elif name in _SWITCH_FLAGS or arg.startswith("-"):
            flags.append(arg)
        else:
            overrides.append(arg)
        i += 1
    return flags + overrides


class _DropHydraJobError:
    """A stderr wrapper that drops the "Error executing job with overrides: [...]" line Hydra
    writes before it re-raises a failed job's exception (hydra/core/utils.py, JobReturn): we
    print our own single `rltrain: error:` line for that exception, and two lines confuse."""

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith(self.PREFIX):
            return len(text)
        return int(self._stream.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_CFG_KINDS = ("job", "all")
# flags after which Hydra composes from somewhere else, or does more than print one config
_HYDRA_ONLY = {"-m", "--multirun", "-cp", "--config-path", "-cn", "--config-name", "-cd",
               "--config-dir", "--info", "-i", "--experimental-rerun", "-sc",
               "--shell-completion", "--hydra-help", "-h", "--help"}  # fmt: skip


class ConfigRequest(NamedTuple):
    kind: str  # job | all
    resolve: bool
    package: str | None
    overrides: list[str]


def config_request(args: list[str]) -> ConfigRequest | None:
    """`--cfg job` / `--cfg all` (with `--resolve`, `--package P`): print the config a run would
    train with, tuned preset applied, as rltrain does it (`print_config`). None for every other
    command line, which Hydra handles itself (`--cfg hydra`, -m, another config directory)."""
    ordered = reorder_hydra_args(args)
    kind: str | None = None
    resolve, package = False, None
    overrides: list[str] = []
    i = 0
    while i < len(ordered):
        arg = ordered[i]
        name, has_value, inline = arg.partition("=") if arg.startswith("-") else (arg, "", "")
        takes = name in ("--cfg", "-c", "--package", "-p")
        value = inline if has_value else (ordered[i + 1] if takes and i + 1 < len(ordered) else "")
        if takes and not has_value:
            i += 1
        if name in ("--cfg", "-c"):
            kind = value
        elif name in ("--package", "-p"):
            package = value
        elif name == "--resolve":
            resolve = True
        elif name in _HYDRA_ONLY or arg.startswith("-"):
            return None
        else:
            overrides.append(arg)
        i += 1
    if kind not in _CFG_KINDS:
        return None
    return ConfigRequest(kind, resolve, package, overrides)


def print_config(request: ConfigRequest) -> None:
    """Compose as a run does (Hydra's compose API on the same configs), apply the preset, print."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import Container, OmegaConf

    from rltrain.config.store import compose_run_config

    cfg = compose_run_config(request.overrides, with_hydra=request.kind == "all")
    if request.kind == "all":
        HydraConfig.instance().set_config(cfg)  # what ${hydra:...} resolves against
    package = None if request.package in (None, "_global_") else request.package
    selected = cfg if package is None else OmegaConf.select(cfg, package)
    if selected is None:
        raise UserError(f"--package {package}: no such key in the config")
    if not isinstance(selected, Container):
        print(selected)
        return
    if package is not None:
        print(f"# @package {package}")
    if request.resolve:
        OmegaConf.resolve(selected)
    sys.stdout.write(OmegaConf.to_yaml(selected))


def run_hydra(args: list[str]) -> Any:
    """Calls the hydra.main-wrapped task with `args` as its command line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rltrain.config.errors import explain

    request = config_request(args)
    if request is not None:
        try:
            return print_config(request)
        except (HydraException, OmegaConfBaseException) as error:
            raise UserError(explain(error)) from error
    live = _named_run_dir(args)
    if live is not None:
        from rltrain.runner.run_lock import refuse_if_held

        refuse_if_held(live)
    # Let Hydra raise instead of printing a stack trace, so we can print one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    saved, saved_stderr = sys.argv, sys.stderr
    sys.argv = [saved[0], *reorder_hydra_args(args)]
    sys.stderr = _DropHydraJobError(saved_stderr)
    try:
        from rltrain.app.hydra_app import hydra_train

        return hydra_train()
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(explain(error)) from error
    except OSError as error:
        if not _raised_by_hydra(error):
            raise
        # Hydra creates the output directory (and writes .hydra/ in it) before the task runs:
        # a path there that cannot hold a directory (/proc/x, a file's child) is the user's
        where = f" {error.filename}" if error.filename else ""
        raise UserError(
            f"cannot create the output directory{where}: {error.strerror or error}; "
            f"{os_error_advice(error) or OUTPUT_DIR_HINT}"
        ) from None
    except ValueError as error:
        # Hydra's argparse check of its modes (hydra/_internal/utils.py), a plain ValueError
        if str(error).startswith("Only one of --run, --multirun"):
            raise UserError(
                f"{error}: print a config with `rltrain --cfg job ...` without -m (it shows one "
                "job)"
            ) from None
        from rltrain.app.sweeps import optuna_failure

        message = optuna_failure(error)
        if message is None:
            raise
        raise UserError(message) from error
    finally:
        sys.argv, sys.stderr = saved, saved_stderr


def _named_run_dir(args: list[str]) -> Path | None:
    """The run directory a single run was told to write (`hydra.run.dir=DIR`, no
    interpolation in it), or None: a sweep or a generated name is a fresh directory."""
    if any(arg in ("-m", "--multirun") for arg in args):
        return None
    for arg in reversed(args):  # the last one given wins, as in Hydra
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key == "hydra.run.dir":
            return None if "${" in value or not value else Path(value)
    return None


def _is_click_error(error: BaseException) -> bool:
    """Typer's usage errors (bad option values, unknown options, missing arguments) are click's
    ClickException, vendored by recent Typer versions under another module: match by name."""
    return any(cls.__name__ == "ClickException" for cls in type(error).__mro__)


def _click_message(error: Any) -> str:
    command = getattr(getattr(error, "ctx", None), "command_path", None)
    text = " ".join(str(error.format_message()).split())
    return f"{text} (see `{command} --help`)" if command else text


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("rltrain")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        from rltrain import __version__

        return __version__


def _raised_by_hydra(error: BaseException) -> bool:
    """Whether the innermost frame of rltrain's or Hydra's own code in the traceback is Hydra's
    (its job runner, launcher): not a failure inside rltrain's training code."""
    owner = None
    tb = error.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename.replace(os.sep, "/")
        if "/hydra/" in filename:
            owner = "hydra"
        elif "/rltrain/" in filename:
            owner = "rltrain"
        tb = tb.tb_next
    return owner == "hydra"


class _QuietStdout:
    """stdout that outlives its reader: once the pipe is closed (`rltrain ... | head -1`), the
    rest of the output goes to /dev/null and the run goes on to its end, checkpoint and summary
    included, instead of dying on the next progress line."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _drop(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _guard_stdout() -> None:
    """A closed stdout (`rltrain ... >&-`) becomes /dev/null: Python would set sys.stdout to None
    (every print fails), and the first file opened would take descriptor 1."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
            setattr(sys, name, open(fd, "w", closefd=False))  # noqa: SIM115 (lives as long as we do)
    if sys.stdout is not None and not isinstance(sys.stdout, _QuietStdout):
        sys.stdout = _QuietStdout(sys.stdout)  # type: ignore[assignment]


def exit_without_teardown(code: int = 0) -> None:
    """End a process that loaded torch without the interpreter's teardown.

    Once training has returned, everything that must reach the disk already has: checkpoints and
    summary.json are written and renamed, the TensorBoard writer is flushed and closed, env
    workers are joined. What remains is tearing down torch's modules and its C++ statics, about
    0.5 s of CPU after every run on this kind of machine (`python -c "import torch"` with
    `os._exit(0)` at the end saves that much), which the user waits for and nothing needs.
    The atexit handlers still run (logging's flush, multiprocessing's child cleanup, launcher
    plugins), then stdout/stderr are flushed and the process ends with `code`. When a non-daemon
    thread is still alive, the normal exit is kept: the interpreter would wait for it.
    """
    import threading

    waiting = [
        thread for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon
    ]  # fmt: skip
    if "torch" not in sys.modules or waiting:
        return
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away, as in main(): nothing left to tell it
        code = 141
    os._exit(code)


def complete(args: list[str]) -> None:
    """`-sc query=SHELL`, what the installed completion calls on each Tab: rltrain's
    subcommands (and `list`'s groups) first, then Hydra's overrides where they apply."""
    from rltrain.app.completion import complete_line

    words, hydra_line = complete_line(os.environ.get("COMP_LINE", ""))
    separator = "\n" if args[1] == "query=fish" else " "
    if words:
        print(separator.join(words), end=separator, flush=True)
    if hydra_line is not None:
        os.environ["COMP_LINE"] = hydra_line
        run_hydra(args)


def main() -> None:
    _guard_stdout()
    args = sys.argv[1:]
    first = args[0] if args else None
    if first in ("--version", "-V"):
        print(f"rltrain {version()}")
        return
    try:
        if first in ("-sc", "--shell-completion") and len(args) == 2:
            if args[1].startswith("query="):
                return complete(args)
        elif first in ("--install-completion", "--show-completion") and len(args) <= 2:
            from rltrain.app import completion

            shell = args[1] if len(args) == 2 else completion.detect_shell()
            if first == "--show-completion":
                print(completion.startup_line(shell)[1])
            else:
                print(completion.install(shell))
            return
        if first == "list" and len(args) <= 2 and not any(a.startswith("-") for a in args):
            # `rltrain list [GROUP]` without Typer: importing Typer (which imports pydantic)
            # costs three times what listing does; `rltrain list --help` still goes to Typer
            from rltrain.app.commands import list_groups

            list_groups(args[1] if len(args) == 2 else None)
        elif first is not None and (first in SUBCOMMANDS[1:] or first in ("--help", "-h")):
            # standalone_mode=False: usage errors come back as exceptions (one line below)
            # instead of Typer's three-line usage block
            # Typer (and click) only for the subcommands and --help: training and --cfg do
            # not pay for importing them
            from rltrain.app.subcommands import app

            code = app(standalone_mode=False)
            if isinstance(code, int) and code == 130:
                fail("interrupted", code=130)
            if isinstance(code, int) and code != 0:
                raise SystemExit(code)
        else:
            run_hydra(args[1:] if first == "train" else args)
    except UserError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except BrokenPipeError:
        # the reader of our output went away (`rltrain ... | head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None
    except Exception as error:
        from rltrain.errors import Interrupted, resource_message

        if _is_click_error(error):
            fail(_click_message(error), code=int(getattr(error, "exit_code", 2)))
        # SIGINT/SIGTERM during training (train or resume): the checkpoint is saved
        if isinstance(error, Interrupted):
            fail(str(error), code=128 + error.signum)
        message = resource_message(error)
        if message is None:
            raise  # a bug, not a user mistake: keep the traceback
        fail(message, code=1)
    # a command that ran to its end: training, resume, eval (those that imported torch)
    exit_without_teardown(0)


if __name__ == "__main__":
    main()
