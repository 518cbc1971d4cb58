"""Small files of a run (summary.json, the saved config) written whole or not at all.

A temp file beside the target, fsynced, then renamed over it: a reader, a kill or a full disk
never leaves a half-written file that a later `rltrain resume` or `rltrain summary` would take
for a damaged one. A failed write removes its temp file and ends in one line.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rltrain.errors import write_failure


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically; UserError with one line when the disk is full, the
    directory is not writable or has vanished (the old file, if any, is then left as it was)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        failure = write_failure(str(path), error)
        if failure is None:
            raise
        raise failure from error
