"""The Typer app of `rltrain`'s subcommands (eval, resume, list, summary, board) and `--help`.

`rltrain.cli.main` imports it only for those: training and `--cfg` go to Hydra without loading
Typer and click. Each command imports what it runs when it runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=False,
    help=(
        "Config-driven reinforcement learning. `rltrain [train] key=value ...` trains "
        "(default: algo=ppo env=cartpole); `rltrain list` shows config groups and options; "
        "`rltrain train --help` shows Hydra's help with the composed config; "
        "`rltrain --install-completion [bash|zsh|fish]` sets up Tab completion."
    ),
)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def train(ctx: typer.Context) -> None:
    """Train (the default command): rltrain [train] [key=value ...] [-m] [--cfg job]."""
    # main() sends `rltrain train ...` to run_hydra itself; this command is what --help lists
    from rltrain.cli import run_hydra

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
    host: str = typer.Option("localhost", help="address to serve on (0.0.0.0: every interface)"),
) -> None:
    """Start TensorBoard on the runs."""
    from rltrain.app.commands import start_board

    start_board(directory, port, host)


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
