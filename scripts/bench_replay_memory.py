"""Fill a 1M-transition Atari-shaped FrameReplayBuffer and report its peak memory.

    python scripts/bench_replay_memory.py [--capacity 1000000] [--num-envs 8]

Drives the buffer like a vector env with 4x84x84 uint8 frame stacks: each step every env gets
one new random frame, episodes end after a random 100..2000 steps (then a reset stack of 4 new
frames, as the env would give). Prints the buffer's array bytes, the peak RSS of the process
(``resource.getrusage``), and the mean time of ``add`` and of ``sample(32)`` (informative only).
Needs about 7.5 GB of RAM for 1M transitions.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from rltrain.blocks.buffers import FrameReplayBuffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--n-step", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    k, h, w, n = 4, 84, 84, args.num_envs
    rng = np.random.default_rng(args.seed)
    buf = FrameReplayBuffer(
        args.capacity, n, (k, h, w), np.uint8, (), np.int64, "cpu", args.n_step, 0.99
    )
    # a pool of random frames: every stored page gets written, without paying for 7 GB of RNG
    pool = rng.integers(0, 256, size=(4096, h, w), dtype=np.uint8)
    obs = pool[rng.integers(0, len(pool), size=(n, k))]
    left = rng.integers(100, 2001, size=n)
    steps = buf.capacity_per_env
    add_time = 0.0
    for _ in range(steps):
        next_obs = np.concatenate([obs[:, 1:], pool[rng.integers(0, len(pool), size=(n, 1))]], 1)
        left -= 1
        ended = left <= 0
        t0 = time.perf_counter()
        buf.add(obs, rng.integers(0, 4, size=n), rng.random(n), ended, np.zeros(n, bool), next_obs)
        add_time += time.perf_counter() - t0
        obs = next_obs
        if ended.any():
            obs = obs.copy()
            obs[ended] = pool[rng.integers(0, len(pool), size=(int(ended.sum()), k))]
            left[ended] = rng.integers(100, 2001, size=int(ended.sum()))

    t0 = time.perf_counter()
    reps = 1000
    for _ in range(reps):
        buf.sample(32, rng)
    sample_time = (time.perf_counter() - t0) / reps

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
    naive_gb = 2 * k * h * w * buf.capacity / 1e9
    print(f"transitions stored  : {len(buf):,} of capacity {buf.capacity:,} ({n} envs)")
    print(f"buffer arrays       : {buf.nbytes / 1e9:.2f} GB (naive: {naive_gb:.1f} GB)")
    print(f"peak RSS            : {peak_gb:.2f} GB")
    print(f"add (8 envs)        : {add_time / steps * 1e6:.0f} us per call")
    print(f"sample(32, n={args.n_step})   : {sample_time * 1e6:.0f} us per call")


if __name__ == "__main__":
    main()
