"""`make bench`: every benchmark, side by side with Stable-Baselines3, as markdown tables.

Run on a quiet machine: the numbers are wall-clock times. `--only ppo,dqn` picks benchmarks.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHES = [
    "bench_startup", "bench_denormals", "bench_ppo", "bench_a2c", "bench_dqn", "bench_population",
    "bench_continuous", "bench_atari", "bench_text", "bench_llm",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--only", default="",
        help="comma-separated: startup,denormals,ppo,a2c,dqn,population,continuous,atari,text,llm",
    )
    args, _ = parser.parse_known_args()
    wanted = {f"bench_{name}" for name in args.only.split(",") if name}
    reports = []
    for name in BENCHES:
        if wanted and name not in wanted:
            continue
        if not (Path(__file__).resolve().parent / f"{name}.py").is_file():
            continue
        print(f"# running {name}", flush=True)
        reports.append(importlib.import_module(name).main())
    print("\n\n".join(r for r in reports if r))


if __name__ == "__main__":
    main()
