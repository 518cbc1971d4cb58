"""Tiny causal language models and data the LLM tests build themselves: a GPT-2 and a Llama with
random weights (2 layers, hidden size 32) and a word-level tokenizer without a pad token, saved
with save_pretrained; preference pairs that follow a rule."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

WORDS = "the a cat dog sat ran on mat big small red blue one two three four five yes no".split()  # noqa: SIM905
PROMPTS = ["the cat", "a dog", "the big red", "one two", "yes"]


def save_tiny_model(root: Path, kind: str, chat_template: str | None = None) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="<unk>")
    if chat_template is not None:
        fast.chat_template = chat_template
    torch.manual_seed(0)
    if kind == "gpt2":
        config = GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                            bos_token_id=1, eos_token_id=1)  # fmt: skip
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
            bos_token_id=1, eos_token_id=1,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    path = root / (kind if chat_template is None else f"{kind}_chat")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    assert fast.pad_token_id is None  # the env must handle a tokenizer without one
    return path


def write_preference_pairs(path: Path, count: int, seed: int = 0) -> Path:
    """The rule: the chosen completion says "cat" somewhere, the rejected one never does."""
    rng = random.Random(seed)
    others = [w for w in WORDS if w != "cat"]
    with path.open("w", encoding="utf-8") as f:
        for _ in range(count):
            chosen = [rng.choice(others) for _ in range(rng.randint(2, 5))]
            chosen.insert(rng.randint(0, len(chosen)), "cat")
            rejected = [rng.choice(others) for _ in range(rng.randint(3, 6))]
            row = {"prompt": rng.choice(PROMPTS), "chosen": " ".join(chosen),
                   "rejected": " ".join(rejected)}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    return path
