"""Atomic, safe checkpoints.

Written to a temp file, fsynced, then renamed over `last.pt`; the checkpoint it replaces is kept
as `previous.pt` (a second name for the same file, made before the rename), so a kill at any
instant leaves a loadable file, and `last.pt` itself never goes missing.
Loading uses `torch.load(weights_only=True)`: a checkpoint can never run code. Every checkpoint
carries a CRC-32 of its payload (tensor bytes and plain values, in order), verified on load:
torch does not check its zip's CRCs, so a flipped byte in tensor data would otherwise load.
A failed save (full disk, a vanished directory, torch's own writer failing) removes its temp
file and leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rltrain.errors import UserError, os_error_advice, warn_stderr

FORMAT_VERSION = 1
LAST = "last.pt"
PREVIOUS = "previous.pt"
BEST = "best.pt"


def to_saveable(obj: Any) -> Any:
    """numpy arrays -> tensors and numpy scalars -> Python numbers, recursively, so that
    `torch.load(weights_only=True)` can read everything back without allow-listing numpy."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {key: to_saveable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_saveable(value) for value in obj)
    return obj


CHECKSUM = "checksum"


def payload_checksum(obj: Any, crc: int = 0) -> int:
    """CRC-32 over a saveable payload: the raw bytes of every tensor and the repr of every plain
    value, with the keys, walked in order (dicts keep their order through torch.save)."""
    if isinstance(obj, torch.Tensor):
        flat = obj.detach().cpu().contiguous().reshape(-1)
        crc = zlib.crc32(f"{flat.dtype}{tuple(obj.shape)}".encode(), crc)
        data: Any = flat.view(torch.uint8).numpy()
        return zlib.crc32(data, crc) if flat.numel() else crc
    if isinstance(obj, dict):
        for key, value in obj.items():
            crc = payload_checksum(value, zlib.crc32(repr(key).encode(), crc))
        return crc
    if isinstance(obj, (list, tuple)):
        for value in obj:
            crc = payload_checksum(value, crc)
        return crc
    return zlib.crc32(repr(obj).encode(), crc)


def keep_as_previous(path: Path) -> None:
    """Make the checkpoint at `path` also `previous.pt`, leaving `path` in place.

    A hard link under a temp name renamed over previous.pt: `path` never goes missing, so a
    reader (or a kill) between this and the rename of the new checkpoint still finds the old
    one there. Where the filesystem has no hard links, `path` is renamed instead; a kill in
    that gap leaves only previous.pt, which `load_latest` falls back to.
    """
    previous = path.with_name(PREVIOUS)
    link = path.with_name(PREVIOUS + ".tmp")
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)
    except OSError:
        os.replace(path, previous)
        return
    os.replace(link, previous)


def save_atomic(state: dict[str, Any], path: Path, keep_previous: bool = True) -> None:
    """Write `state` to `path` through a fsynced temp file and a rename. Any failure to write
    (a full disk, a directory that is not writable or has vanished, torch's writer failing) is a
    UserError with one line; the earlier checkpoint at `path` is then left as it was and the
    temp file is removed."""
    tmp = path.with_name(path.name + ".tmp")
    payload = to_saveable(state)
    payload[CHECKSUM] = payload_checksum(payload)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.exists():
            keep_as_previous(path)
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if _machine_state(error):
            raise _save_failed(path, error) from error
        raise  # a bug (say, something in the state that cannot be saved): keep the traceback


# torch's zip writer (caffe2's inline_container) turns a failed write into a RuntimeError
_WRITE_FAILURES = ("inline_container", "unexpected pos", "file write failed", "PytorchStreamWriter")


def _machine_state(error: BaseException) -> bool:
    """Whether a failed save is the machine's state (full disk, permissions, a directory that
    vanished, torch's writer failing on any of them) rather than a bug."""
    if isinstance(error, OSError):
        return os_error_advice(error) is not None or error.errno == errno.ENOENT
    return isinstance(error, RuntimeError) and any(m in str(error) for m in _WRITE_FAILURES)


def _save_failed(path: Path, error: BaseException) -> UserError:
    """The one line for a checkpoint that could not be written. torch's zip writer reports a full
    disk as a RuntimeError ("unexpected pos", "file write failed"), not an OSError."""
    if isinstance(error, OSError):
        reason, advice = error.strerror or str(error), os_error_advice(error)
        if error.errno == errno.ENOENT:
            advice = "the run directory vanished while it was written; resume or train again"
    else:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        reason, advice = f"the write failed ({first[:120]})", None
    if advice is None:
        free = _free_bytes(path.parent)
        advice = (
            f"the disk has {free / 1e6:.1f} MB free: free some space or choose another "
            "directory with hydra.run.dir=DIR"
            if free is not None
            else "check that the run directory still exists and can be written"
        )
    # a save that fails leaves the files it would have replaced as they were
    resumable = any((path.parent / name).is_file() for name in (LAST, PREVIOUS))
    resume = (
        f"; the last complete checkpoint is kept: `rltrain resume {path.parent.parent}` "
        "continues from it"
        if resumable
        else ""
    )
    return UserError(f"cannot write checkpoint {path}: {reason}; {advice}{resume}")


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def load(path: Path) -> dict[str, Any]:
    """Load one checkpoint file; UserError with one line if it is missing, corrupt or unsafe."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    # torch.save writes a zip archive whose directory sits at the end: a truncated or garbled
    # file has none. Checked first because torch.load would otherwise try the legacy pickle
    # format on it and report an "unsafe" pickle instead of a damaged file.
    if not zipfile.is_zipfile(path):
        raise UserError(f"checkpoint {path} is truncated or corrupt; it cannot be loaded")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"checkpoint {path} needs arbitrary unpickling and was refused "
            f"({_unpickling_reason(exc)})"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"checkpoint {path} is truncated or corrupt; it cannot be loaded") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} is not an rltrain checkpoint (format {FORMAT_VERSION})")
    expected = state.pop(CHECKSUM, None)  # absent only in checkpoints older than the checksum
    if expected is not None and payload_checksum(state) != expected:
        raise UserError(f"checkpoint {path} is damaged: its data does not match its checksum")
    problem = layout_problem(state)
    if problem is not None:
        raise UserError(f"checkpoint {path} is damaged or incomplete: {problem}")
    return state


# What every checkpoint holds at its top level, and of which type (ints pass as floats: a best
# return of -inf is saved as a float, a wall time of 0 may be an int).
_LAYOUT: dict[str, tuple[type, ...]] = {
    "algo": (str,),
    "env": (str,),
    "step": (int,),
    "iterations": (int,),
    "elapsed": (float, int),
    "best_eval": (float, int),
    "algo_state": (dict,),
    "rng": (dict,),
    "generator": (dict,),
}


def layout_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's top-level keys (missing, of the wrong type, a negative
    step), or None: a hand-edited or foreign dict is named here, not in a KeyError deep inside."""
    for key, types in _LAYOUT.items():
        if key not in state:
            return f"it has no '{key}'"
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            return f"'{key}' is a {type(value).__name__}, not {expected}"
    if state["step"] < 0 or state["iterations"] < 0:
        return f"'step'={state['step']} and 'iterations'={state['iterations']} must be >= 0"
    for key in ("env_state", "recorder"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            return f"'{key}' is a {type(state[key]).__name__}, not dict"
    return None


# What a model's load_state_dict raises for a state of another shape, layout or algorithm;
# callers turn these into `does_not_fit`.
STATE_LOAD_ERRORS = (KeyError, RuntimeError, TypeError, ValueError, AttributeError)


def does_not_fit(directory: Path, algo_name: str, error: BaseException) -> UserError:
    """The one line for a checkpoint whose algorithm state does not load into the model the
    run's config builds: weights of another shape or layout (an older rltrain, a config edited
    after training) or the state of another algorithm."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = " ".join(lines[:2])[:200]
    return UserError(
        f"checkpoint in {directory} does not fit the {algo_name} model this rltrain builds "
        f"from the run's config ({type(error).__name__}: {detail})"
    )


def _unpickling_reason(error: Exception) -> str:
    """The line of torch's long weights_only message that names what was refused."""
    text = str(error)
    # torch names the callable a pickle asks for in one of several phrasings, by version:
    # "Unsupported global: GLOBAL os.system", "unsupported GLOBAL posix.system whose module ..."
    match = re.search(r"GLOBAL ([\w.]+)", text)
    if match:
        return f"it asks to call or build {match.group(1)}, which is not tensor data"
    match = re.search(r"Unsupported operand \S+", text)
    if match:
        return match.group(0)
    # otherwise the line that says what was refused, not torch's advice or documentation link
    lines = [
        line.strip() for line in text.splitlines()
        if line.strip() and not re.search(r"https?://|weights_only|Weights only", line)
    ]  # fmt: skip
    return lines[0][:160] if lines else "it holds objects that are not tensor data"


def load_latest(directory: Path, warn: Any = warn_stderr) -> tuple[dict[str, Any], Path]:
    """last.pt, or previous.pt with a warning when last.pt is damaged."""
    last, previous = directory / LAST, directory / PREVIOUS
    try:
        return load(last), last
    except UserError as error:
        if not previous.is_file():
            raise
        warn(f"warning: {error}; falling back to {previous}")
        return load(previous), previous
