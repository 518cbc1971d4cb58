"""Fixed costs the user waits for: commands that train nothing, and a run's start-up and exit.

    python scripts/bench_startup.py               # 5 repetitions, pinned to the last usable core
    python scripts/bench_startup.py --repeat 9 --no-pin
    python scripts/bench_startup.py --baseline DIR  # also an older source tree, side by side
                                                    # (DIR holds its rltrain/ package, e.g.
                                                    # `git archive <rev> rltrain | tar -x -C DIR`)

1. Wall time from launch to exit of `rltrain --cfg job`, `rltrain list` and `rltrain --help`
   (the installed console script), beside `python -c pass` (the interpreter alone) and
   `python -c "import torch"` (what these commands no longer pay).
2. A tiny PPO CartPole run (2,048 steps, logger=none): time from launch to its `preset:` line,
   to its `done:` line, and from `done:` to exit, beside the interpreter's teardown of torch
   (`import torch` ending normally against ending with os._exit), which the CLI now skips.

All commands run interleaved, repetition by repetition, so drifts in machine load hit every row
alike; medians are reported, each with its range, and for the commands their CPU time too (what
a quiet core would take, roughly, when the machine is busy).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent
RLTRAIN = str(BIN / "rltrain")
TINY_RUN = ["total_steps=2048", "device=cpu", "logger=none", "logger.progress=lines"]
COMMANDS = [["--help"], ["list"], ["--cfg", "job"], ["--cfg", "job", "algo=dqn", "env=atari"]]


def pin_to(core: int | None) -> Callable[[], None] | None:
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(
    command: Sequence[str], cwd: Path, pin: Callable[[], None] | None, env: dict[str, str]
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`. CPU time (user + system of the
    finished child) moves far less than wall time when other processes share the core."""
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        preexec_fn=pin, env=env,
    )  # fmt: skip
    return time.perf_counter() - start, children_cpu() - cpu


def run_phases(
    rltrain: list[str], cwd: Path, pin: Callable[[], None] | None, env: dict[str, str]
) -> dict[str, float]:
    """Seconds from launch to the run's `preset:` line and its `done:` line, and done -> exit."""
    start = time.perf_counter()
    marks: dict[str, float] = {}
    with subprocess.Popen(
        [*rltrain, *TINY_RUN], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, preexec_fn=pin, env=env,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            for key in ("preset:", "done:"):
                if line.startswith(key):
                    marks[key] = time.perf_counter() - start
        process.wait()
    end = time.perf_counter() - start
    if process.returncode != 0 or len(marks) != 2:
        raise RuntimeError(f"the tiny run failed (exit {process.returncode})")
    return {
        "launch -> preset line": marks["preset:"],
        "launch -> done line": marks["done:"],
        "done line -> exit": end - marks["done:"],
    }


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true", help="let the processes use every core")
    parser.add_argument("--baseline", type=Path, help="an older source tree to time beside")
    args, _ = parser.parse_known_args()
    core = None if args.no_pin else max(os.sched_getaffinity(0))
    pin = pin_to(core)
    cwd = Path(os.environ.get("TMPDIR", "/tmp")) / "rltrain-bench-startup"
    cwd.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    # (name, command, environment): the installed console script, then the baseline's source
    # run by the same interpreter (`python -m rltrain.cli` with the tree first on the path)
    env = dict(os.environ)
    versions: list[tuple[str, list[str], dict[str, str]]] = [("", [RLTRAIN], env)]
    if args.baseline is not None:
        old_env = {**env, "PYTHONPATH": str(args.baseline.resolve())}
        versions.append((" (baseline)", [python, "-m", "rltrain.cli"], old_env))
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass": ([python, "-c", "pass"], env),
        'python -c "import torch"': ([python, "-c", "import torch"], env),
        'python -c "import torch; os._exit(0)"': (
            [python, "-c", "import os, torch; os._exit(0)"], env
        ),
    }
    for suffix, rltrain, version_env in versions:
        for words in COMMANDS:
            commands[f"rltrain {' '.join(words)}{suffix}"] = ([*rltrain, *words], version_env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu_times: dict[str, list[float]] = {name: [] for name in commands}
    phases: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name, (command, command_env) in commands.items():
            seconds, cpu = wall(command, cwd, pin, command_env)
            times[name].append(seconds)
            cpu_times[name].append(cpu)
        for suffix, rltrain, version_env in versions:
            for name, value in run_phases(rltrain, cwd, pin, version_env).items():
                phases.setdefault(name + suffix, []).append(value)
    where = "unpinned" if core is None else f"pinned to core {core}"
    teardown = statistics.median(times['python -c "import torch"']) - statistics.median(
        times['python -c "import torch; os._exit(0)"']
    )
    lines = [
        f"## Fixed costs: wall seconds, median (range) of {args.repeat}, {where}",
        "",
        "| command | wall (s) | CPU, user + system (s) |",
        "|---|---|---|",
        *(f"| `{name}` | {fmt(times[name])} | {fmt(cpu_times[name])} |" for name in commands),
        "",
        "| tiny PPO run (`rltrain " + " ".join(TINY_RUN) + "`) | seconds |",
        "|---|---|",
        *(f"| {name} | {fmt(values)} |" for name, values in phases.items()),
        "",
        f"torch's teardown at exit (skipped by the CLI after a finished command): {teardown:.3f} s",
    ]
    report = "\n".join(lines)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
