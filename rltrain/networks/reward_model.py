"""A learned reward model ("a model as the reward function"): a Hugging Face causal LM's last
hidden state at the last token of prompt + completion, through a linear head, is the scalar
reward r(x, y). Trained on preference pairs by `rltrain reward-model` (rltrain/app/
reward_model.py); `env.reward=model:RUN_DIR` scores completions with it.

A saved reward model is a directory: `model/` (save_pretrained, with the tokenizer),
`value_head.pt` (weights only) and `reward_model.json` (what it was trained on, its accuracy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rltrain.errors import UserError

HEAD_FILE, META_FILE, MODEL_DIR = "value_head.pt", "reward_model.json", "model"


def join(prompt: str, completion: str) -> str:
    """The text a reward model reads: the prompt, one space, the completion."""
    return f"{prompt.rstrip()} {completion.lstrip()}"


class RewardModel(nn.Module):
    def __init__(self, backbone: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.backbone, self.tokenizer = backbone, tokenizer
        config: Any = backbone.config
        self.head = nn.Linear(int(config.get_text_config().hidden_size), 1)

    def forward(self, ids: Tensor, attention: Tensor) -> Tensor:
        """[B, T] right-padded ids and mask -> [B] rewards, read at each text's last token."""
        out = self.backbone(input_ids=ids, attention_mask=attention, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        last = attention.sum(1).long() - 1
        return self.head(hidden[torch.arange(len(ids), device=ids.device), last]).squeeze(-1)

    def encode(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        device = self.head.weight.device
        rows = [self.tokenizer(t)["input_ids"] or [self.tokenizer.eos_token_id] for t in texts]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), int(self.tokenizer.pad_token_id), dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)], attention[i, : len(row)] = torch.tensor(row), 1
        return ids.to(device), attention.to(device)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> Tensor:
        was_training = self.training
        self.eval()
        texts = [join(p, c) for p, c in zip(prompts, completions, strict=True)]
        rewards = self(*self.encode(texts))
        self.train(was_training)
        return rewards

    def save(self, run_dir: Path, meta: dict[str, Any]) -> None:
        self.backbone.save_pretrained(run_dir / MODEL_DIR)  # type: ignore[operator]
        self.tokenizer.save_pretrained(run_dir / MODEL_DIR)
        torch.save(self.head.state_dict(), run_dir / HEAD_FILE)
        (run_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_reward_model(run_dir: str | Path) -> RewardModel:
    """A reward model saved by `rltrain reward-model`; one line when the directory is not one."""
    from rltrain.envs.llm import load_tokenizer
    from rltrain.networks.hf import load_causal_lm

    where = Path(run_dir).expanduser()
    missing = [n for n in (MODEL_DIR, HEAD_FILE, META_FILE) if not (where / n).exists()]
    if missing:
        raise UserError(
            f"{run_dir} is not a reward model directory (no {missing[0]}); train one with "
            "`rltrain reward-model --data PAIRS.jsonl --model DIR --out RUN_DIR`"
        )
    from rltrain.config.schema import NetworkConfig

    backbone = load_causal_lm(NetworkConfig(name="hf", path=str(where / MODEL_DIR)))
    model = RewardModel(backbone, load_tokenizer(str(where / MODEL_DIR)))
    try:
        model.head.load_state_dict(torch.load(where / HEAD_FILE, weights_only=True))
    except Exception as exc:  # a damaged or foreign head file
        raise UserError(f"{where / HEAD_FILE} is not a reward head: {type(exc).__name__}") from None
    return model.eval()
