"""reorder_hydra_args: Hydra's argparse wants its flags before the overrides; rltrain accepts
them anywhere. Flags move to the front in their order, with their values; overrides keep theirs."""

from __future__ import annotations

import pytest

from rltrain.cli import ConfigRequest, config_request, reorder_hydra_args

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
    ("args", "expected"),
    [
        (["--cfg", "job", "algo=dqn"], ConfigRequest("job", False, None, ["algo=dqn"])),
        (["algo=dqn", "--cfg=all", "--resolve"], ConfigRequest("all", True, None, ["algo=dqn"])),
        (["-c", "job", "-p", "algo", "seed=1"], ConfigRequest("job", False, "algo", ["seed=1"])),
        (["--cfg", "hydra"], None),  # Hydra's own
        (["-m", "--cfg", "job", "seed=0,1"], None),
        (["--cfg", "job", "-cd", "/tmp/mine"], None),
        (["algo=dqn", "seed=1"], None),  # a run
    ],
)
def test_which_config_prints_rltrain_composes_itself(args, expected):
    """`--cfg job|all` print the config with the tuned preset applied, as a run trains with it;
    every other command line goes to Hydra untouched."""
    assert config_request(args) == expected
