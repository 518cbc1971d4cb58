"""Shell completion through a real bash: `rltrain --install-completion` writes the line that
loads Hydra's completion script, and that script, on a Tab, gets rltrain's subcommands first and
Hydra's overrides where they apply (also after `train`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _tab(line: str, rltrain_bin: Path, env: dict[str, str]) -> list[str]:
    """What bash offers for `line` (the cursor at its end), through the installed script."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    script = (
        'eval "$(rltrain -sc install=bash)"\n'
        f'COMP_LINE="{line}"; COMP_POINT={len(line)}; COMP_CWORD={cword}\n'
        "hydra_bash_completion\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**env, "PATH": f"{rltrain_bin.parent}:{env['PATH']}"}
    result = subprocess.run(
        ["bash", "--norc", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return result.stdout.split()


@needs_bash
def test_tab_offers_subcommands_then_overrides(rltrain_bin, cli_environment):
    env = cli_environment()
    # a subcommand and the overrides that start alike; export does not start with "ev"
    assert _tab("rltrain ev", rltrain_bin, env) == [
        "eval", "eval_episodes=", "eval_epsilon=", "eval_interval="
    ]  # fmt: skip
    assert _tab("rltrain re", rltrain_bin, env) == ["resume", "reward-model"]
    assert _tab("rltrain algo.l", rltrain_bin, env) == ["algo.lr="]
    assert _tab("rltrain train algo.l", rltrain_bin, env) == ["algo.lr="]  # as without `train`
    assert _tab("rltrain list hydra/", rltrain_bin, env) == ["hydra/launcher", "hydra/sweeper"]
    # a run directory after eval: file names (bash's default), no overrides
    assert "eval_episodes=" not in _tab("rltrain eval ", rltrain_bin, env)


def test_install_completion_adds_one_line_to_the_startup_file(run_cli, workdir, cli_environment):
    env = cli_environment(HOME=str(workdir), SHELL="/bin/bash")
    (workdir / ".bashrc").write_text("alias ll='ls -l'")  # no newline at its end
    first = run_cli(["--install-completion"], workdir, env=env)
    assert first.returncode == 0, first.stderr
    assert f"bash completion added to {workdir / '.bashrc'}" in first.stdout
    again = run_cli(["--install-completion", "bash"], workdir, env=env)
    assert again.returncode == 0 and "already" in again.stdout
    assert (workdir / ".bashrc").read_text().splitlines() == [
        "alias ll='ls -l'", 'eval "$(rltrain -sc install=bash)"'
    ]  # fmt: skip

    fish = run_cli(["--install-completion", "fish"], workdir, env=env)
    assert fish.returncode == 0, fish.stderr
    fish_file = workdir / ".config" / "fish" / "completions" / "rltrain.fish"
    assert fish_file.read_text() == "rltrain -sc install=fish | source\n"
    shown = run_cli(["--show-completion", "zsh"], workdir, env=env)
    assert "bashcompinit" in shown.stdout and not (workdir / ".zshrc").exists()


def test_install_completion_for_an_unknown_shell_is_one_line(
    run_cli, workdir, cli_environment, one_error_line
):
    env = cli_environment(HOME=str(workdir), SHELL="/usr/bin/tcsh")
    message = one_error_line(run_cli(["--install-completion"], workdir, env=env))
    assert "cannot tell which shell" in message and "bash" in message
    message = one_error_line(run_cli(["--install-completion", "tcsh"], workdir, env=env))
    assert "no completion for shell 'tcsh'" in message
    assert not list(workdir.iterdir())
