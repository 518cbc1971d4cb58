"""One writer per run directory, and checkpoints whose data is checked on load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rltrain.errors import UserError
from rltrain.runner import checkpoint as ckpt
from rltrain.runner.run_lock import LOCK_NAME, run_lock


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    with run_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())
        with pytest.raises(UserError, match=rf"being written by .*PID {os.getpid()}"), run_lock(
            tmp_path
        ):
            pass
    assert not (tmp_path / LOCK_NAME).exists()  # released and removed on a clean exit
    with run_lock(tmp_path):  # and free again
        pass


def test_a_lock_file_left_by_a_dead_writer_is_taken_over(tmp_path: Path, capsys) -> None:
    (tmp_path / LOCK_NAME).write_text("999999 otherhost\n")  # no process holds its flock
    with run_lock(tmp_path):
        pass
    assert "ended without releasing it; taking it over" in capsys.readouterr().err


def _state() -> dict:
    """The top-level layout every checkpoint has (load checks it), plus a tensor to damage."""
    return {
        "format": ckpt.FORMAT_VERSION, "algo": "ppo", "env": "cartpole", "step": 0,
        "iterations": 0, "elapsed": 0.0, "best_eval": 0.0, "algo_state": {}, "rng": {},
        "generator": {}, "weights": torch.arange(4096, dtype=torch.float32),
    }  # fmt: skip


def test_a_flipped_byte_in_tensor_data_is_caught_and_previous_is_used(tmp_path: Path) -> None:
    last = tmp_path / ckpt.LAST
    ckpt.save_atomic(_state(), last)
    ckpt.save_atomic({**_state(), "weights": torch.ones(4096)}, last)  # first one -> previous
    data = bytearray(last.read_bytes())
    marker = torch.ones(1).numpy().tobytes()  # 1.0f: the payload's bytes are in the zip as is
    at = bytes(data).index(marker * 4)
    data[at + 1] ^= 0xFF
    last.write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged: its data does not match its checksum"):
        ckpt.load(last)
    warnings: list[str] = []
    state, path = ckpt.load_latest(tmp_path, warn=warnings.append)
    assert path.name == ckpt.PREVIOUS and torch.equal(state["weights"], _state()["weights"])
    assert warnings and "checksum" in warnings[0]


def test_a_failed_write_leaves_no_temp_file_and_the_old_checkpoint(tmp_path, monkeypatch) -> None:
    last = tmp_path / ckpt.LAST
    ckpt.save_atomic(_state(), last)

    def full_disk(*args: object, **kwargs: object) -> None:  # what torch's zip writer raises
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(UserError, match=r"cannot write checkpoint .*the write failed.*MB free"):
        ckpt.save_atomic({**_state(), "weights": torch.zeros(1)}, last)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LAST]
    monkeypatch.undo()
    assert torch.equal(ckpt.load(last)["weights"], _state()["weights"])
