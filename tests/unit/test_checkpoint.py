"""Atomic checkpoints: round trip, previous.pt rotation, damaged files, refusal of unsafe pickles,
RNG state round trips."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rltrain.blocks import random_state
from rltrain.errors import UserError
from rltrain.runner import checkpoint as ckpt


def make_state(step: int) -> dict:
    return {
        "format": ckpt.FORMAT_VERSION,
        "algo": "ppo",
        "env": "cartpole",
        "step": step,
        "iterations": step,
        "elapsed": 1.5,
        "best_eval": -float("inf"),
        "algo_state": {"net": {"w": torch.arange(6.0).reshape(2, 3) * step}, "obs": torch.ones(3)},
        "rng": {},
        "generator": {},
        "names": ["a", "b"],
    }


def _truncate(path: Path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))


def test_round_trip(tmp_path):
    path = tmp_path / "checkpoints" / ckpt.LAST
    ckpt.save_atomic(make_state(7), path)
    loaded = ckpt.load(path)
    assert loaded["step"] == 7 and loaded["names"] == ["a", "b"]
    assert loaded["best_eval"] == -float("inf")
    expected = torch.arange(6.0).reshape(2, 3) * 7
    torch.testing.assert_close(loaded["algo_state"]["net"]["w"], expected)
    assert sorted(p.name for p in path.parent.iterdir()) == [ckpt.LAST]  # no .tmp left


def test_second_save_keeps_the_first_as_previous(tmp_path):
    path = tmp_path / ckpt.LAST
    ckpt.save_atomic(make_state(1), path)
    ckpt.save_atomic(make_state(2), path)
    ckpt.save_atomic(make_state(3), path)
    assert ckpt.load(path)["step"] == 3
    assert ckpt.load(tmp_path / ckpt.PREVIOUS)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LAST, ckpt.PREVIOUS]


def test_best_does_not_rotate(tmp_path):
    ckpt.save_atomic(make_state(1), tmp_path / ckpt.BEST, keep_previous=False)
    ckpt.save_atomic(make_state(2), tmp_path / ckpt.BEST, keep_previous=False)
    assert [p.name for p in tmp_path.iterdir()] == [ckpt.BEST]
    assert ckpt.load(tmp_path / ckpt.BEST)["step"] == 2


def test_a_stale_tmp_file_from_a_killed_save_is_overwritten(tmp_path):
    (tmp_path / (ckpt.LAST + ".tmp")).write_bytes(b"half a checkpoint")
    ckpt.save_atomic(make_state(4), tmp_path / ckpt.LAST)
    assert ckpt.load(tmp_path / ckpt.LAST)["step"] == 4
    assert not (tmp_path / (ckpt.LAST + ".tmp")).exists()


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ckpt.load(tmp_path / ckpt.LAST)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / ckpt.LAST
    ckpt.save_atomic(make_state(1), path)
    _truncate(path, keep)
    with pytest.raises(UserError, match="truncated or corrupt") as info:
        ckpt.load(path)
    assert "\n" not in str(info.value)


def test_garbage_file(tmp_path):
    path = tmp_path / ckpt.LAST
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match="truncated or corrupt"):
        ckpt.load(path)


@pytest.mark.parametrize(
    "content", [{"step": 1}, {"format": ckpt.FORMAT_VERSION + 1}, torch.zeros(3), [1, 2]]
)
def test_not_an_rltrain_checkpoint(tmp_path, content):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(UserError, match="not an rltrain checkpoint"):
        ckpt.load(path)


MARKER: list[str] = []


def _run_on_unpickle(path: str) -> str:
    """What a malicious pickle would call; loading must never get here."""
    Path(path).write_text("code ran")
    MARKER.append(path)
    return path


class Payload:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (_run_on_unpickle, (self.path,))


class PlainObject:
    def __init__(self) -> None:
        self.weights = torch.ones(2)


def test_a_pickle_that_needs_arbitrary_code_is_refused(tmp_path):
    flag = tmp_path / "ran.txt"
    path = tmp_path / ckpt.LAST
    torch.save({"format": ckpt.FORMAT_VERSION, "evil": Payload(str(flag))}, path)
    with pytest.raises(UserError, match="needs arbitrary unpickling and was refused") as info:
        ckpt.load(path)
    assert "\n" not in str(info.value)
    assert not flag.exists() and not MARKER


def test_a_custom_class_is_refused(tmp_path):
    path = tmp_path / ckpt.LAST
    torch.save({"format": ckpt.FORMAT_VERSION, "object": PlainObject()}, path)
    with pytest.raises(UserError, match="refused"):
        ckpt.load(path)


def test_load_latest_prefers_last(tmp_path):
    ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    ckpt.save_atomic(make_state(2), tmp_path / ckpt.LAST)
    warnings: list[str] = []
    state, path = ckpt.load_latest(tmp_path, warn=warnings.append)
    assert state["step"] == 2 and path == tmp_path / ckpt.LAST and warnings == []


def test_load_latest_falls_back_to_previous_with_a_warning(tmp_path):
    ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    ckpt.save_atomic(make_state(2), tmp_path / ckpt.LAST)
    _truncate(tmp_path / ckpt.LAST)
    warnings: list[str] = []
    state, path = ckpt.load_latest(tmp_path, warn=warnings.append)
    assert state["step"] == 1 and path == tmp_path / ckpt.PREVIOUS
    assert len(warnings) == 1 and "previous.pt" in warnings[0] and "last.pt" in warnings[0]


def test_last_is_in_place_at_every_step_of_a_save(tmp_path, monkeypatch):
    """previous.pt is a hard link made before the renames: a reader never finds last.pt missing
    (the kill-and-resume tests poll it while a run saves)."""
    path = tmp_path / ckpt.LAST
    ckpt.save_atomic(make_state(1), path)
    seen: list[int | None] = []
    real_replace = os.replace

    def replace(source, target):
        seen.append(ckpt.load(path)["step"] if path.is_file() else None)
        real_replace(source, target)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    ckpt.save_atomic(make_state(2), path)
    assert seen == [1, 1]  # before previous.pt's rename and before the new last.pt's
    assert ckpt.load(path)["step"] == 2 and ckpt.load(tmp_path / ckpt.PREVIOUS)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LAST, ckpt.PREVIOUS]


def test_rotation_without_hard_links_renames(tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(ckpt.os, "link", no_links)
    path = tmp_path / ckpt.LAST
    ckpt.save_atomic(make_state(1), path)
    ckpt.save_atomic(make_state(2), path)
    assert ckpt.load(path)["step"] == 2 and ckpt.load(tmp_path / ckpt.PREVIOUS)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LAST, ckpt.PREVIOUS]


def test_load_latest_after_a_kill_between_the_two_renames(tmp_path):
    """Without hard links save_atomic moves last.pt to previous.pt, then the new file to
    last.pt: a kill in between leaves previous.pt only."""
    ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    (tmp_path / ckpt.LAST).rename(tmp_path / ckpt.PREVIOUS)
    state, path = ckpt.load_latest(tmp_path, warn=lambda message: None)
    assert state["step"] == 1 and path.name == ckpt.PREVIOUS


def test_load_latest_default_warning_goes_to_stderr(tmp_path, capsys):
    ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    ckpt.save_atomic(make_state(2), tmp_path / ckpt.LAST)
    _truncate(tmp_path / ckpt.LAST)
    ckpt.load_latest(tmp_path)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("rltrain: warning: ") and err.count("\n") == 1


def test_load_latest_with_both_damaged(tmp_path):
    ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    ckpt.save_atomic(make_state(2), tmp_path / ckpt.LAST)
    _truncate(tmp_path / ckpt.LAST)
    _truncate(tmp_path / ckpt.PREVIOUS)
    with pytest.raises(UserError, match=r"previous\.pt is truncated"):
        ckpt.load_latest(tmp_path, warn=lambda message: None)


def test_load_latest_without_previous(tmp_path):
    ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    _truncate(tmp_path / ckpt.LAST)
    with pytest.raises(UserError, match=r"last\.pt is truncated"):
        ckpt.load_latest(tmp_path, warn=lambda message: None)


def test_rng_states_survive_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    rng = np.random.default_rng(4)
    for _ in range(3):  # move every stream away from its seed
        random.random(), np.random.rand(), torch.rand(1), rng.random()
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    streams = {"rng": random_state.rng_state(), "generator": random_state.generator_state(rng)}
    state = {**make_state(1), **streams}
    ckpt.save_atomic(state, tmp_path / ckpt.LAST)
    expected = (
        random.gauss(0, 1),
        random.random(),
        np.random.rand(4),
        torch.rand(4),
        rng.random(4),
    )

    for _ in range(5):  # disturb everything, then restore from the file
        random.random(), np.random.rand(), torch.rand(1), rng.random()
    loaded = ckpt.load(tmp_path / ckpt.LAST)
    random_state.set_rng_state(loaded["rng"])
    random_state.set_generator_state(rng, loaded["generator"])
    got = (random.gauss(0, 1), random.random(), np.random.rand(4), torch.rand(4), rng.random(4))
    assert got[0] == expected[0] and got[1] == expected[1]
    np.testing.assert_array_equal(got[2], expected[2])
    torch.testing.assert_close(got[3], expected[3], rtol=0, atol=0)
    np.testing.assert_array_equal(got[4], expected[4])


# --- resource faults while saving -----------------------------------------------------------------
def _failing_fsync(code: int):
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    return fsync


@pytest.mark.parametrize(
    ("code", "advice"),
    [(errno.ENOSPC, "free some disk space"), (errno.EACCES, "make it writable")],
)
def test_a_failed_save_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, code, advice
):
    run = tmp_path / "run"
    path = run / "checkpoints" / ckpt.LAST
    ckpt.save_atomic(make_state(1), path)
    monkeypatch.setattr(ckpt.os, "fsync", _failing_fsync(code))
    with pytest.raises(UserError) as caught:
        ckpt.save_atomic(make_state(2), path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write checkpoint {path}: {os.strerror(code)}; {advice}")
    assert "hydra.run.dir=DIR" in message and f"`rltrain resume {run}`" in message
    monkeypatch.undo()
    assert ckpt.load(path)["step"] == 1  # untouched, and no half-written temp file left
    assert sorted(p.name for p in path.parent.iterdir()) == [ckpt.LAST]


def test_a_failed_first_save_does_not_suggest_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.os, "fsync", _failing_fsync(errno.ENOSPC))
    with pytest.raises(UserError, match="free some disk space") as caught:
        ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    assert "resume" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_other_os_errors_while_saving_are_not_disguised(tmp_path, monkeypatch):
    """An OS error that is not about space or permissions is a bug: it keeps its traceback."""
    monkeypatch.setattr(ckpt.os, "fsync", _failing_fsync(errno.EIO))
    with pytest.raises(OSError) as caught:
        ckpt.save_atomic(make_state(1), tmp_path / ckpt.LAST)
    assert not isinstance(caught.value, UserError) and caught.value.errno == errno.EIO
