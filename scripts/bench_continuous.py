"""SAC and TD3: env steps/s after learning starts, rltrain beside Stable-Baselines3.

    python scripts/bench_continuous.py                       # Pendulum-v1 and HalfCheetah-v5
    python scripts/bench_continuous.py --envs Pendulum-v1 --steps 2000 --repeats 3

Each row runs both sides with the same hyperparameters (below: RL Zoo's MuJoCo settings, SAC
[256, 256] and TD3 [400, 300], batch 256, one gradient step per env step, one env), each in its
own process with one torch thread (torch.set_num_threads(1), OMP_NUM_THREADS=1), CPU, the sides
alternating so that drifts in machine load hit both alike. What is timed: `--steps` env steps
(acting, env, replay, one update each) after `--learning-starts` uniform random steps; start-up
and the warm-up are not counted. rltrain trains through its own loop
(`rltrain.runner.loop.train`, TensorBoard on, ten logs over the timed steps); its time comes from
the charts/sps points it logs. SB3 is timed by a callback at the step learning starts and at the
end. HalfCheetah-v5 needs the mujoco extra (in the bench extra).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# (network widths, algo settings shared by both sides)
SETTINGS: dict[str, tuple[list[int], dict[str, float]]] = {
    "sac": ([256, 256], {"lr": 3e-4, "batch_size": 256, "gamma": 0.99, "tau": 0.005}),
    "td3": ([400, 300], {"lr": 1e-3, "batch_size": 256, "gamma": 0.99, "tau": 0.005}),
}
BUFFER = 1_000_000


def ours(algo: str, env_id: str, learning_starts: int, steps: int) -> float:
    import torch

    torch.set_num_threads(1)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rltrain.config.store import compose_run_config
    from rltrain.runner.loop import train

    hidden, settings = SETTINGS[algo]
    env = ["env=pendulum"] if env_id == "Pendulum-v1" else ["env=mujoco", f"env.id={env_id}"]
    overrides = [
        f"algo={algo}", *env, "preset=none", "device=cpu", "device.threads=1", "env.num_envs=1",
        f"total_steps={learning_starts + steps}", f"algo.learning_starts={learning_starts}",
        f"algo.buffer_size={BUFFER}", "algo.checkpoint_buffer=false", "checkpoint_interval=0",
        "eval_episodes=1", "logger.progress=none", f"logger.log_interval={max(50, steps // 10)}",
        f"network.hidden_sizes=[{','.join(map(str, hidden))}]", "network.activation=relu",
        "network.ortho_init=false", *[f"algo.{k}={v}" for k, v in settings.items()],
    ]  # fmt: skip
    if algo == "td3":
        overrides.append("algo.exploration_noise=0.1")
    run_dir = Path(tempfile.mkdtemp(prefix="bench-cc-")) / "run"
    train(compose_run_config(overrides), run_dir)
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    # charts/sps at step s is s / (seconds since the loop started): t(s) = s / sps(s)
    points = [(e.step, e.step / e.value) for e in acc.Scalars("charts/sps")]
    (s0, t0), (s1, t1) = min(p for p in points if p[0] >= learning_starts), max(points)
    return (s1 - s0) / (t1 - t0)


def sb3(algo: str, env_id: str, learning_starts: int, steps: int) -> float:
    import torch

    torch.set_num_threads(1)
    import stable_baselines3 as sb3_lib
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    hidden, settings = SETTINGS[algo]
    import gymnasium as gym

    env = gym.make(env_id)
    kwargs: dict[str, object] = {
        "learning_rate": settings["lr"], "batch_size": int(settings["batch_size"]),
        "gamma": settings["gamma"], "tau": settings["tau"], "buffer_size": BUFFER,
        "learning_starts": learning_starts, "train_freq": 1, "gradient_steps": 1,
        "policy_kwargs": {"net_arch": hidden},
    }  # fmt: skip
    if algo == "td3":
        dim = env.action_space.shape[0]  # type: ignore[index]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), 0.1 * np.ones(dim))
    marks: dict[str, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == learning_starts:
                marks["start"] = time.perf_counter()
            return True

    model = getattr(sb3_lib, algo.upper())("MlpPolicy", env, seed=0, device="cpu", **kwargs)
    model.learn(total_timesteps=learning_starts + steps, callback=Clock())
    return steps / (time.perf_counter() - marks["start"])


def child(side: str, algo: str, env_id: str, learning_starts: int, steps: int) -> float:
    command = [
        sys.executable, __file__, "--child", side, "--algo", algo, "--envs", env_id,
        "--learning-starts", str(learning_starts), "--steps", str(steps),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["sps"])


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["ours", "sb3"])
    parser.add_argument("--algo", default="sac,td3")
    parser.add_argument("--envs", default="Pendulum-v1,HalfCheetah-v5")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    args, _ = parser.parse_known_args()
    if args.child:
        run = ours if args.child == "ours" else sb3
        print(json.dumps({"sps": run(args.algo, args.envs, args.learning_starts, args.steps)}))
        return ""
    lines = [
        "## SAC / TD3: env steps/s after learning starts (one torch thread per side)", "",
        f"{args.steps:,} steps after {args.learning_starts:,} random ones, batch 256, one update "
        "per step; median of the repeats (each value in brackets)", "",
        "| algo | env | rltrain steps/s | SB3 steps/s | ratio |", "|---|---|---|---|---|",
    ]  # fmt: skip
    for env_id in args.envs.split(","):
        for algo in args.algo.split(","):
            results: dict[str, list[float]] = {"ours": [], "sb3": []}
            for _ in range(args.repeats):
                for side in ("ours", "sb3"):
                    results[side].append(
                        child(side, algo, env_id, args.learning_starts, args.steps)
                    )
            a, b = statistics.median(results["ours"]), statistics.median(results["sb3"])
            detail = {k: ", ".join(f"{v:.0f}" for v in vs) for k, vs in results.items()}
            lines.append(
                f"| {algo} | {env_id} | {a:.0f} ({detail['ours']}) | {b:.0f} ({detail['sb3']}) "
                f"| {a / b:.2f}x |"
            )
            print(lines[-1], flush=True)
    report = "\n".join(lines)
    print(report)
    return report


if __name__ == "__main__":
    main()
