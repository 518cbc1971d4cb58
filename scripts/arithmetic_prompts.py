"""Write arithmetic word prompts with their answers as JSONL, for env.reward=exact (docs/llm.md).

    python scripts/arithmetic_prompts.py --count 64 --out arithmetic.jsonl
"""

from __future__ import annotations

import argparse
import json
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--max", type=int, default=20, help="operands are drawn from 0..MAX")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        for _ in range(args.count):
            a, b = rng.randint(0, args.max), rng.randint(0, args.max)
            op = rng.choice("+-")
            answer = a + b if op == "+" else a - b
            prompt = f"What is {a} {op} {b}? Answer with the number only."
            f.write(json.dumps({"prompt": prompt, "answer": str(answer)}) + "\n")


if __name__ == "__main__":
    main()
