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

import typer

from rltrain.errors import OUTPUT_DIR_HINT, UserError, os_error_advice

SUBCOMMANDS = ("train", "eval", "resume", "export", "list", "summary", "board", "reward-model")
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

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=False,
    help=(
        "Config-driven reinforcement learning. `rltrain [train] key=value ...` trains "
        "(default: algo=ppo env=cartpole); `rltrain list` shows config groups and options; "
        "`rltrain train --help` shows Hydra's help with the composed config."
    ),
)


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


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def train(ctx: typer.Context) -> None:
    """Train (the default command): rltrain [train] [key=value ...] [-m] [--cfg job]."""
    run_hydra(list(ctx.args))


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="a run directory (runs/<env>/<algo>/<time>)"),
) -> None:
    """Continue an interrupted run from its last checkpoint."""
    from rltrain.app.commands import resume_run

    resume_run(run_dir)


@app.command(name="eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    episodes: int = typer.Option(10, help="episodes to play"),
    checkpoint: str = typer.Option("last", help="last or best"),
    video: bool = typer.Option(False, help="record whole episodes to RUN_DIR/videos (MP4)"),
    stochastic: bool = typer.Option(False, help="sample actions instead of the greedy/mean action"),
    seed: int = typer.Option(0, help="evaluation seed"),
) -> None:
    """Evaluate a checkpoint: per-episode returns, mean and std."""
    from rltrain.app.commands import evaluate_run

    evaluate_run(run_dir, episodes, checkpoint, video, not stochastic, seed)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    format: str = typer.Option(..., "--format", help="onnx or torchscript"),
    checkpoint: str = typer.Option("best", help="best or last"),
    out: Path = typer.Option(
        None, help="the file to write (default RUN_DIR/export/policy_<checkpoint>.onnx|.pt)"
    ),
) -> None:
    """Export the deterministic policy (and V or Q) to ONNX or TorchScript, for use outside."""
    from rltrain.app.export import export_run

    export_run(run_dir, checkpoint, format, out)


@app.command(name="list")
def list_(
    group: str = typer.Argument(None, help="algo, env, network, device, logger or tuned"),
) -> None:
    """Config groups and their options, one line each."""
    from rltrain.app.commands import list_groups

    list_groups(group)


@app.command()
def summary(
    directory: Path = typer.Argument(Path("runs"), help="a run, sweep or runs directory"),
    csv: Path = typer.Option(None, help="also write the table as CSV"),
    plot: Path = typer.Option(
        None, help="also draw learning curves per configuration into this PNG (rltrain[plot])"
    ),
    group: bool = typer.Option(
        True, help="one row per configuration with seeds grouped, best first; "
        "--no-group: one row per run, in run-directory order"
    ),
) -> None:
    """One row per configuration (seeds grouped): swept keys, eval return, steps, wall time."""
    from rltrain.app.commands import summarize

    summarize(directory, csv, plot, group)


@app.command()
def board(
    directory: Path = typer.Argument(Path("runs"), help="directory with event files"),
    port: int = typer.Option(6006, help="TensorBoard port"),
) -> None:
    """Start TensorBoard on the runs."""
    from rltrain.app.commands import start_board

    start_board(directory, port)


@app.command(name="reward-model")
def reward_model(
    data: Path = typer.Option(..., help="preference pairs: JSONL with prompt, chosen, rejected"),
    model: Path = typer.Option(..., help="the base: a causal LM saved with save_pretrained"),
    out: Path = typer.Option(..., help="a new directory for the reward model and its curves"),
    epochs: int = typer.Option(3, help="passes over the training pairs"),
    lr: float = typer.Option(1e-4, help="Adam's learning rate"),
    batch_size: int = typer.Option(16, help="pairs per gradient step"),
    val_fraction: float = typer.Option(0.2, help="share of the pairs held out for accuracy"),
    seed: int = typer.Option(0, help="split, shuffling and head initialisation"),
) -> None:
    """Train a Bradley-Terry reward model; then use it with env.reward=model:OUT."""
    from rltrain.app.reward_model import train_reward_model

    train_reward_model(data, model, out, epochs, lr, batch_size, val_fraction, seed)


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


def main() -> None:
    _guard_stdout()
    args = sys.argv[1:]
    first = args[0] if args else None
    if first in ("--version", "-V"):
        print(f"rltrain {version()}")
        return
    try:
        if first is not None and (first in SUBCOMMANDS[1:] or first in ("--help", "-h")):
            # standalone_mode=False: usage errors come back as exceptions (one line below)
            # instead of Typer's three-line usage block
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
        from rltrain.errors import resource_message

        if _is_click_error(error):
            fail(_click_message(error), code=int(getattr(error, "exit_code", 2)))
        # SIGINT/SIGTERM during training (train or resume): the checkpoint is saved
        from rltrain.runner.loop import Interrupted

        if isinstance(error, Interrupted):
            fail(str(error), code=128 + error.signum)
        message = resource_message(error)
        if message is None:
            raise  # a bug, not a user mistake: keep the traceback
        fail(message, code=1)


if __name__ == "__main__":
    main()
