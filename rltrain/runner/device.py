"""Seeding, the device, and torch threads (with the per-job cap of a parallel sweep), per run."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from rltrain.config.schema import DeviceConfig
from rltrain.errors import UserError


def seed_everything(seed: int) -> np.random.Generator:
    """Seeds python, numpy's global RNG and torch; returns the run's numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def select_device(cfg: DeviceConfig) -> torch.device:
    if cfg.deterministic:
        # cuBLAS needs a fixed workspace for deterministic matmuls (CUDA docs, "Reproducibility").
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if cfg.name == "cpu":
        return torch.device("cpu")
    if cfg.name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device=cuda but no CUDA GPU is visible; use device=cpu or device=auto")
        return torch.device("cuda")
    if cfg.name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise UserError(f"device={cfg.name} is not known; use auto, cpu or cuda")


def configure_denormals(cfg: DeviceConfig) -> bool:
    """Flush-to-zero and denormals-are-zero for CPU float math, as `device.flush_denormal` says;
    returns whether the CPU supports the mode (x86 with SSE3; torch says False elsewhere).

    Why: a float32 below 1.18e-38 is denormal, and x86 CPUs handle each operation on one in a
    slow microcode path, tens of times the cost of a normal number. Adam's first moment
    m <- b1 m + (1 - b1) g decays geometrically wherever gradients are zero (units that never
    fire, saturated outputs), so m passes through the denormal range: in a 30k-step CartPole DQN
    checkpoint 54% of m's entries were denormal, and `lerp_` + `addcdiv_` took 503 us per step on
    them against 48 us on normal numbers and 38 us with flush-to-zero (docs/benchmarks.md).
    A value that small changes no update: lr * m / (sqrt(v) + eps) is then below 1e-30. GPU math
    is unaffected; A3C's spawned workers set the mode themselves. The mode is a CPU register of
    the calling thread: it covers the MLP runs, which compute on this one thread; torch's OpenMP
    worker threads (CNNs with device.threads > 1) keep their own and still see denormals.
    """
    return bool(torch.set_flush_denormal(cfg.flush_denormal))


def configure_threads(cfg: DeviceConfig, image_observations: bool) -> int:
    """torch intra-op threads. 0 = automatic: one thread for small MLPs, where thread hand-offs
    cost more than they save, and for CNNs every core this job may use: in a parallel sweep
    max(1, cores // jobs at once), or RLTRAIN_JOB_THREADS when set (job_thread_cap),
    so that jobs x threads never exceeds the cores."""
    threads = cfg.threads
    if threads < 0:
        raise UserError(f"device.threads={threads} must be >= 0 (0 = automatic)")
    cores = os.cpu_count() or 1
    if threads > cores:
        # more threads than cores only adds hand-offs, and an absurd count aborts inside
        # OpenMP's allocator (libgomp: out of memory) before Python can say anything
        raise UserError(
            f"device.threads={threads} is more than the {cores} CPU cores here; use at most "
            f"{cores}, or 0 to choose"
        )
    if threads == 0:
        threads = job_thread_cap() if image_observations else 1
    torch.set_num_threads(threads)
    return threads


JOB_THREADS_ENV = "RLTRAIN_JOB_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (taskset / SLURM / container affinity), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def launcher_thread_cap(launcher: Mapping[str, Any] | None, cores: int) -> int:
    """Torch threads for one job under a Hydra launcher config, on a machine with `cores` cores.

    The rule: threads = max(1, cores // jobs running at once on the machine).
    - joblib: `n_jobs` jobs at once (n_jobs = -1 means one per core, -2 all but one, ...);
    - Ray: the `num_cpus` the launcher reserves per job (Ray's default: 1);
    - submitit (local or SLURM): the job's `cpus_per_task` when given;
    - basic (sequential) or no launcher: every core.
    """
    if not launcher:
        return cores
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        n_jobs = int(launcher.get("n_jobs") or -1)
        parallel = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // parallel)
    if "ray" in target.lower():
        remote = (launcher.get("ray") or {}).get("remote") or {}
        return max(1, min(cores, int(remote.get("num_cpus") or 1)))
    if "submitit" in target.lower() and launcher.get("cpus_per_task"):
        return max(1, min(cores, int(launcher["cpus_per_task"])))
    return cores


def job_thread_cap() -> int:
    """Cores this job may use: RLTRAIN_JOB_THREADS when set (>= 1), else `launcher_thread_cap` of
    the running Hydra multirun's launcher, else every usable core."""
    value = os.environ.get(JOB_THREADS_ENV, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise UserError(f"{JOB_THREADS_ENV}={value} must be a positive integer")
        return threads
    cores = usable_cores()
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return cores
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return cores
    launcher = OmegaConf.to_container(hydra_cfg.launcher, resolve=False)
    if not isinstance(launcher, dict):
        return cores
    return launcher_thread_cap({str(key): value for key, value in launcher.items()}, cores)
