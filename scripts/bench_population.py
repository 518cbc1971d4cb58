"""Sixteen seeds as one batched program (`num_seeds=16 parallel_seeds=true`) against one SB3 seed,
PPO and A2C on CartPole-v1 with RL Zoo settings, DQN with rltrain's preset (SB3 given the same
settings: sb3_runner's dqn_cartpole_preset), in the same invocation.

The population's time to solved is the time from launching the process until its last seed to
solve does (the mean of its last 10 training returns first reaching 475, as benchlib times one
run); SB3's is its one seed's. Pin the process (`taskset -c 0`) to compare on one core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import BIN, fmt, read_returns, run_sb3, solved_at

ALGOS = {
    "ppo": ("ppo_cartpole", "PPO"),
    "a2c": ("a2c_cartpole", "A2C"),
    "dqn": ("dqn_cartpole_preset", "DQN"),  # the population's 16 x 1e5 steps: about 35 min
}


def run_population(algo: str, seeds: int, workdir: Path) -> tuple[float | None, int, int, float]:
    """(seconds until every seed solved or None, seeds solved in training, seeds whose final
    eval is >= 475, process wall time)."""
    job = workdir / f"{algo}-population"
    command = [
        str(BIN / "rltrain"), f"algo={algo}", "env=cartpole", f"num_seeds={seeds}",
        "parallel_seeds=true", "logger.progress=none", f"hydra.run.dir={job}",
    ]  # fmt: skip
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=workdir)
    wall = time.time() - start
    solved, finals = [], []
    for seed in range(seeds):
        run_dir = job / f"seed_{seed}"
        at = solved_at(read_returns(run_dir), 475.0)
        solved.append(None if at is None else at[0] - start)
        finals.append(json.loads((run_dir / "summary.json").read_text())["eval_return_mean"])
    times = [t for t in solved if t is not None]
    every = max(times) if len(times) == seeds else None
    return every, len(times), sum(f >= 475 for f in finals), wall


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--algos", default="ppo,a2c,dqn")
    args, _ = parser.parse_known_args()
    workdir = Path(tempfile.mkdtemp(prefix="rltrain-bench-pop-"))
    lines = [
        f"## {args.population} seeds as one batched program vs one SB3 seed (CartPole-v1)", "",
        f"| algo | rltrain x{args.population}: all solved (s) | solved in training | final eval "
        ">= 475 | wall (s) | SB3 one seed: solved (s) | wall (s) | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for algo in args.algos.split(","):
        preset, shown = ALGOS[algo]
        every, solved, final_ok, wall = run_population(algo, args.population, workdir)
        theirs = run_sb3(f"SB3 {shown}", algo, "CartPole-v1", 0, 475.0, preset)
        ratio = (
            f"{theirs.time_to_solved / every:.2f}x"
            if every and theirs.time_to_solved else "-"
        )  # fmt: skip
        lines.append(
            f"| {shown} | {fmt(every)} | {solved}/{args.population} | {final_ok}/{args.population}"
            f" | {fmt(wall)} | {fmt(theirs.time_to_solved)} | {fmt(theirs.wall_time)} | {ratio} |"
        )
    lines += ["", "ratio: SB3's one seed's time to solved over the population's (above 1: the "
              "population of sixteen solves sooner than SB3's one)"]  # fmt: skip
    report = "\n".join(lines)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
