"""reorder_hydra_args: Hydra's argparse wants its flags before the overrides; rltrain accepts
them anywhere. Flags move to the front in their order, with their values; overrides keep theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrain.cli import reorder_hydra_args, skip_mode_probe

CASES = {
    "empty": ([], []),
    "overrides only": (["algo=dqn", "seed=1"], ["algo=dqn", "seed=1"]),
    "multirun last": (
        ["seed=0,1", "hydra/launcher=joblib", "-m"],
        ["-m", "seed=0,1", "hydra/launcher=joblib"],
    ),
    "multirun in the middle": (["a=1", "--multirun", "b=2"], ["--multirun", "a=1", "b=2"]),
    "cfg with its value": (
        ["algo.lr=0.1", "--cfg", "job", "env.num_envs=3"],
        ["--cfg", "job", "algo.lr=0.1", "env.num_envs=3"],
    ),
    "short cfg": (["a=1", "-c", "all"], ["-c", "all", "a=1"]),
    "cfg with =": (["a=1", "--cfg=job"], ["--cfg=job", "a=1"]),
    "short flag with =": (["a=1", "-cd=/tmp/conf", "b=2"], ["-cd=/tmp/conf", "a=1", "b=2"]),
    "several flags keep their order": (
        ["a=1", "-cn", "other", "b=2", "-m", "-cp", "pkg://x", "--resolve"],
        ["-cn", "other", "-m", "-cp", "pkg://x", "--resolve", "a=1", "b=2"],
    ),
    "package flag": (["x=1", "--package", "_global_"], ["--package", "_global_", "x=1"]),
    "info alone": (["a=1", "--info"], ["--info", "a=1"]),
    "info with a value": (["a=1", "--info", "defaults-tree"], ["--info", "defaults-tree", "a=1"]),
    "info does not eat an override": (["--info", "a=1"], ["--info", "a=1"]),
    "short info": (["-i", "plugins", "a=1"], ["-i", "plugins", "a=1"]),
    "help and hydra help": (["a=1", "--hydra-help"], ["--hydra-help", "a=1"]),
    "value flag at the very end": (["a=1", "--cfg"], ["--cfg", "a=1"]),
    "add, force-add and delete overrides": (
        ["+x=1", "-m", "++y=2", "~z"],
        ["-m", "+x=1", "++y=2", "~z"],
    ),
    "negative numbers are values": (["algo.lr=-1", "seed=-3"], ["algo.lr=-1", "seed=-3"]),
    "sweep syntax": (
        ["algo.lr=range(1,3)", "-m", "x=choice(a,b)"],
        ["-m", "algo.lr=range(1,3)", "x=choice(a,b)"],
    ),
    "unknown flag moves alone": (
        ["seed=1", "--nope", "total_steps=64"],
        ["--nope", "seed=1", "total_steps=64"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reorder(name):
    args, expected = CASES[name]
    assert reorder_hydra_args(list(args)) == expected


def test_input_is_not_modified():
    args = ["a=1", "-m"]
    reorder_hydra_args(args)
    assert args == ["a=1", "-m"]


def test_every_argument_is_kept_once():
    args = ["a=1", "-m", "--cfg", "job", "b=2", "--info", "c=3", "-cd", "d", "--resolve"]
    result = reorder_hydra_args(args)
    assert sorted(result) == sorted(args)


def test_hydra_parses_the_reordered_arguments():
    """Hydra's own parser accepts the result: flags parsed, overrides in order."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parsed = parser.parse_args(
        reorder_hydra_args(["seed=0,1", "--cfg", "job", "hydra/launcher=joblib", "-m", "x=2"])
    )
    assert parsed.multirun and parsed.cfg == "job"
    assert parsed.overrides == ["seed=0,1", "hydra/launcher=joblib", "x=2"]


# --- skipping Hydra's mode probe --------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "skips"),
    [
        (["algo=dqn", "env=atari", "seed=1"], True),
        (["-m", "seed=0,1", "hydra/launcher=joblib"], True),
        (["hydra.mode=MULTIRUN", "seed=0,1"], False),
        (["++hydra.mode=RUN"], False),
        (["--config-dir", "/tmp/mine", "algo=ppo"], False),
        (["-cd=/tmp/mine"], False),
        (["-cn", "other"], False),
        (["hydra.searchpath=[file:///tmp/mine]"], False),
    ],
)
def test_mode_probe_is_skipped_only_when_nothing_can_set_hydra_mode(args, skips, monkeypatch):
    from hydra._internal.hydra import Hydra

    original = Hydra.get_mode
    monkeypatch.setattr(Hydra, "get_mode", original)  # restored after the test
    assert skip_mode_probe(args) is skips
    assert (Hydra.get_mode is not original) is skips
    if skips:
        assert Hydra.get_mode(None, "config", args) is None  # type: ignore[arg-type]


def test_no_shipped_config_sets_hydra_mode():
    """What makes skipping the probe safe: the probe could only ever find None in them."""
    from omegaconf import OmegaConf

    import rltrain.conf

    files = sorted(Path(next(iter(rltrain.conf.__path__))).rglob("*.yaml"))
    assert len(files) > 30
    for path in files:
        assert OmegaConf.select(OmegaConf.load(path), "hydra.mode") is None, path
