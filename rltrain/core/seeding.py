"""Seeding and device/thread set-up, done once per run."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

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


def configure_threads(cfg: DeviceConfig, image_observations: bool) -> int:
    """torch intra-op threads. 0 = automatic: one thread for small MLPs, where thread hand-offs
    cost more than they save, and for CNNs every core this job may use: in a parallel sweep
    max(1, cores // jobs at once), or RLTRAIN_JOB_THREADS when set (rltrain.sweeps.job_thread_cap),
    so that jobs x threads never exceeds the cores."""
    threads = cfg.threads
    if threads < 0:
        raise UserError(f"device.threads={threads} must be >= 0 (0 = automatic)")
    if threads == 0:
        from rltrain.sweeps import job_thread_cap

        threads = job_thread_cap() if image_observations else 1
    torch.set_num_threads(threads)
    return threads
