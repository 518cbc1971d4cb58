from __future__ import annotations

import errno
import sys

# the CLI's subcommands (rltrain/cli.py dispatches on them); here so messages below the CLI can
# name them without importing it
SUBCOMMANDS = ("train", "eval", "resume", "export", "list", "summary", "board", "reward-model")


class UserError(Exception):
    """A mistake the user can fix; the CLI prints str(self) on one line and exits non-zero."""


class NonFiniteError(UserError):
    """A loss, gradient or value estimate became NaN/inf: training stops with one line."""


class Interrupted(Exception):
    """SIGINT / SIGTERM: a checkpoint was written; the CLI exits non-zero with this message.

    Defined here, not in the runner that raises it, so the CLI can recognise it without
    importing the runner (and torch) on every error path, `rltrain --cfg job` mistakes included.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


# What to do about an operating-system error that is the machine's state, not a bug.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)
_NOT_A_DIRECTORY = (errno.ENOTDIR, errno.EEXIST)
OUTPUT_DIR_HINT = (
    "choose another output directory with hydra.run.dir=DIR (hydra.sweep.dir=DIR for -m)"
)


def os_error_advice(error: OSError) -> str | None:
    """What to do about a full disk, a directory without write permission, or a file where a
    directory should be; None for other OS errors (those are bugs worth a traceback)."""
    if error.errno in _NO_SPACE:
        return f"free some disk space or {OUTPUT_DIR_HINT}"
    if error.errno in _NOT_ALLOWED:
        return f"make it writable or {OUTPUT_DIR_HINT}"
    if error.errno in _NOT_A_DIRECTORY:
        return f"a file is in the way of a directory there; {OUTPUT_DIR_HINT}"
    return None


def is_cuda_oom(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (a RuntimeError subclass), or the plain RuntimeError older
    torch versions and some kernels raise with the same text; no torch import needed."""
    return type(error).__name__ == "OutOfMemoryError" or (
        isinstance(error, RuntimeError) and "CUDA out of memory" in str(error)
    )


def resource_message(error: BaseException) -> str | None:
    """One line for a resource fault raised anywhere (output directory, disk, GPU memory), or
    None when `error` is not one."""
    if is_cuda_oom(error):
        return (
            "CUDA out of memory: use a smaller algo.batch_size or env.num_envs (a smaller "
            "algo.buffer_size for replay), or train on the CPU with device=cpu"
        )
    if isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    ):
        # numpy's MemoryError, torch's CPU allocator: a size in the config the machine cannot hold
        return (
            "out of memory: the configuration asks for more memory than this machine has; use "
            "smaller network.hidden_sizes, algo.buffer_size, env.num_envs or env.screen_size"
        )
    if isinstance(error, OSError):
        advice = os_error_advice(error)
        if advice is not None:
            where = f" {error.filename}" if error.filename else ""
            return f"cannot write{where}: {error.strerror or error}; {advice}"
    return None


def warn_stderr(message: str) -> None:
    """Warnings go to stderr, so stdout stays the command's output (eval returns, tables)."""
    print(f"rltrain: {message}", file=sys.stderr, flush=True)


def write_failure(what: str, error: OSError) -> UserError | None:
    """The one line for `what` (a file of the run) that could not be written: a full disk,
    no permission, a file in the way, or a run directory that vanished while it was written;
    None for other OS errors (bugs worth a traceback)."""
    advice = os_error_advice(error)
    if advice is None and error.errno == errno.ENOENT:
        advice = "the run directory vanished while it was written; train again (or resume a copy)"
    if advice is None:
        return None
    return UserError(f"cannot write {what}: {error.strerror or error}; {advice}")
