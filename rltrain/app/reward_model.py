"""`rltrain reward-model`: a Bradley-Terry reward model trained on preference pairs (JSONL
with `prompt`, `chosen`, `rejected`) from a Hugging Face causal LM on local disk. It logs the
loss and the pairwise accuracy on a held-out split to TensorBoard in the output directory,
and saves what `env.reward=model:RUN_DIR` loads (rltrain/networks/reward_model.py)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rltrain.errors import UserError

ACCURACY_TAG, TRAIN_ACCURACY_TAG, LOSS_TAG = (
    "reward_model/accuracy", "reward_model/train_accuracy", "reward_model/loss",
)  # fmt: skip


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str


def load_pairs(path: Path) -> list[Pair]:
    if not path.is_file():
        raise UserError(f"--data {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"--data {path} is not UTF-8 text; save it as UTF-8") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"--data {path} line {number} is not JSON: {exc.msg}") from None
        fields = ("prompt", "chosen", "rejected")
        missing = [f for f in fields if not (isinstance(row, dict) and isinstance(row.get(f), str))]
        if missing:
            raise UserError(
                f'--data {path} line {number} has no "{missing[0]}" string field (each line needs '
                '"prompt", "chosen" and "rejected")'
            )
        pairs.append(Pair(row["prompt"], row["chosen"], row["rejected"]))
    if len(pairs) < 2:
        raise UserError(f"--data {path} holds {len(pairs)} preference pairs; at least 2 are needed")
    return pairs


def train_reward_model(data: Path, model_path: Path, out: Path, epochs: int, lr: float,
                       batch_size: int, val_fraction: float, seed: int) -> float:  # fmt: skip
    """Train, log, save; returns the final held-out pairwise accuracy."""
    if epochs < 1 or batch_size < 1 or not lr > 0 or not 0 < val_fraction < 1:
        raise UserError(
            f"--epochs {epochs}, --batch-size {batch_size}, --lr {lr}, --val-fraction "
            f"{val_fraction}: epochs and batch size >= 1, lr > 0, val fraction in (0, 1)"
        )
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty; choose a new directory")
    pairs = load_pairs(data)
    from rltrain.blocks.optim import Adam
    from rltrain.blocks.token_rewards import bradley_terry_loss
    from rltrain.config.schema import NetworkConfig
    from rltrain.config.validate import check_model_dir
    from rltrain.envs.llm import load_tokenizer
    from rltrain.logging import Recorder
    from rltrain.networks.hf import load_causal_lm
    from rltrain.networks.reward_model import RewardModel, join

    check_model_dir(str(model_path), None)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_val = max(1, round(val_fraction * len(pairs)))
    val = [pairs[i] for i in order[:n_val]]
    train = [pairs[i] for i in order[n_val:]] or val
    model = RewardModel(load_causal_lm(NetworkConfig(name="hf", path=str(model_path))),
                        load_tokenizer(str(model_path)))  # fmt: skip
    optimizer = Adam(model.parameters(), lr=lr, eps=1e-8)

    def rewards(batch: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
        texts = [join(p.prompt, p.chosen) for p in batch]
        texts += [join(p.prompt, p.rejected) for p in batch]
        r = model(*model.encode(texts))
        return r[: len(batch)], r[len(batch) :]

    @torch.no_grad()
    def accuracy(split: list[Pair]) -> float:
        model.eval()
        wins = 0
        for start in range(0, len(split), 64):
            chosen, rejected = rewards(split[start : start + 64])
            wins += int((chosen > rejected).sum())
        model.train()
        return wins / len(split)

    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(out, enabled=True)
    started, step, acc = time.perf_counter(), 0, 0.0
    for epoch in range(1, epochs + 1):
        shuffled = rng.permutation(len(train))
        losses = []
        for start in range(0, len(train), batch_size):
            chosen, rejected = rewards([train[i] for i in shuffled[start : start + batch_size]])
            loss = bradley_terry_loss(chosen, rejected)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
        acc, train_acc = accuracy(val), accuracy(train)
        rec.write(LOSS_TAG, float(np.mean(losses)), epoch)
        rec.write(ACCURACY_TAG, acc, epoch)
        rec.write(TRAIN_ACCURACY_TAG, train_acc, epoch)
        print(f"epoch {epoch}/{epochs}: loss {np.mean(losses):.4f} | held-out accuracy {acc:.3f} "
              f"({len(val)} pairs) | train accuracy {train_acc:.3f}", flush=True)  # fmt: skip
    rec.close()
    model.save(out, {
        "base": str(model_path), "data": str(data), "train_pairs": len(train),
        "val_pairs": len(val), "epochs": epochs, "lr": lr, "seed": seed, "val_accuracy": acc,
        "seconds": round(time.perf_counter() - started, 1),
    })  # fmt: skip
    print(f"reward model: {out} (use env.reward=model:{out})")
    return acc
