"""One writer per run directory: train and resume hold `<run>/.lock` while they write.

The lock is an advisory `flock` on the file, which the kernel releases when the holder exits or is
killed, so a crashed run never leaves a lock that blocks its own resume. The file records the
holder's PID and host: a second writer is refused with one line that names them, and a file left
by a writer that died is taken over with a warning. Readers (eval, summary, board) take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from rltrain.errors import UserError, warn_stderr

LOCK_NAME = ".lock"


def _holder(text: str) -> str:
    pid, _, host = text.strip().partition(" ")
    return f"PID {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


def _held_by_another(fd: int, run_dir: Path) -> UserError:
    holder = _holder(os.pread(fd, 256, 0).decode(errors="replace"))
    return UserError(
        f"{run_dir} is being written by another rltrain process ({holder}); wait for it "
        "to end (or stop it), or train into another directory"
    )


def refuse_if_held(run_dir: Path) -> None:
    """UserError naming the holder when another process holds `run_dir`'s lock; creates nothing.

    For `rltrain hydra.run.dir=DIR` on a live run: Hydra writes DIR/.hydra/ before the task
    runs and takes the lock, so the check has to come before Hydra starts."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return  # no lock file (or no directory): nobody writes there
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _held_by_another(fd, run_dir) from None
    finally:
        os.close(fd)  # releases the shared lock it may have taken


def _acquire(path: Path, run_dir: Path) -> int:
    """An open descriptor of `path` holding its flock. Retried when the file was replaced while
    we opened it (a writer that ended removes it): the lock must be on the file at `path`."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _held_by_another(fd, run_dir)
            os.close(fd)
            raise error from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the duration of the block; UserError if another
    process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = _acquire(path, run_dir)
    try:
        previous = os.pread(fd, 256, 0).decode(errors="replace").strip()
        if previous:
            # a lock file without a live lock: its writer ended without cleaning up (killed)
            warn_stderr(f"warning: {run_dir} was last written by {_holder(previous)}, which ended "
                        "without releasing it; taking it over")  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            # clean exit: no file left to warn about; the flock goes with the descriptor
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)
