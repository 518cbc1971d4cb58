"""Adam's step on a denormal-heavy state, with and without flush-to-zero (device.flush_denormal).

    python scripts/bench_denormals.py [--size 131072] [--repeat 200]

One torch thread (as training MLPs), rltrain's flat Adam over `--size` weights whose gradient is
zero, its first moment set, before each timed step, to normal numbers (1e-3) or to denormals
(1e-39, made while the mode is off). Reports the fastest tenth of the steps of each kind,
interleaved, with the mode off and on.
"""

from __future__ import annotations

import argparse
import time

import torch

from rltrain.blocks.optim import Adam


def step_us(adam: Adam, state: torch.Tensor) -> float:
    adam.exp_avg.copy_(state)  # a bit-for-bit copy: no arithmetic, so no flushing
    start = time.perf_counter()
    adam.step()
    return (time.perf_counter() - start) * 1e6


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 17)
    parser.add_argument("--repeat", type=int, default=200)
    args, _ = parser.parse_known_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(False)
    states = {"normal": torch.full((args.size,), 1e-3), "denormal": torch.full((args.size,), 1e-39)}
    lines = [
        f"## Adam step over {args.size:,} weights, fastest tenth of {args.repeat} (us)",
        "",
        "| flush-to-zero | normal state | denormal state | ratio |",
        "|---|---|---|---|",
    ]
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        weights = torch.nn.Parameter(torch.randn(args.size))
        adam = Adam([weights], lr=1e-3)
        adam.exp_avg_sq.fill_(1e-6)
        adam.flat_grad.zero_()
        times: dict[str, list[float]] = {name: [] for name in states}
        for _ in range(args.repeat):
            for name, state in states.items():
                times[name].append(step_us(adam, state))
        fast = {name: sorted(values)[len(values) // 10] for name, values in times.items()}
        lines.append(
            f"| {'on' if flush else 'off'} | {fast['normal']:.0f} | {fast['denormal']:.0f} | "
            f"{fast['denormal'] / fast['normal']:.1f}x |"
        )
    torch.set_flush_denormal(False)
    report = "\n".join(lines)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
