"""A model as the reward function, end to end on a tiny GPT-2 the test builds: a reward model
trained on pairs where the preferred completion says "cat" (and the rejected one never does),
then GRPO against it through the console script. The rule's own score, the share of sampled
completions that say "cat", must rise: the policy learned the preference, not just the number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")

from tiny_lm import PROMPTS, save_tiny_model, write_preference_pairs  # tests/tiny_lm.py

SAMPLES_PER_PROMPT = 64


def rule_score(base: Path, run: Path | None, seed: int = 0) -> float:
    """Share of completions (6 tokens, sampled at temperature 1 with transformers' own generate)
    that contain the word "cat", for the base model or the policy saved in `run`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if run is not None:
        net = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["algo_state"]["net"]
        model.load_state_dict({k[len("model.") :]: v for k, v in net.items()
                               if k.startswith("model.")})  # fmt: skip
    torch.manual_seed(seed)
    hits = total = 0
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer(prompt)["input_ids"]] * SAMPLES_PER_PROMPT)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0,
                             max_new_tokens=6, pad_token_id=tokenizer.eos_token_id)  # fmt: skip
        for row in out[:, ids.shape[1] :].tolist():
            words = tokenizer.decode([t for t in row if t != tokenizer.eos_token_id]).split()
            hits += "cat" in words
            total += 1
    return hits / total


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grpo_against_a_learned_reward_model_raises_the_rules_score(
    seed: int, run_cli: Any, tmp_path: Path, tb_scalars: Any
) -> None:
    base = save_tiny_model(tmp_path, "gpt2")
    data = write_preference_pairs(tmp_path / "pairs.jsonl", 300, seed=seed)
    reward_model = tmp_path / "rm"
    trained = run_cli(["reward-model", "--data", str(data), "--model", str(base), "--out",
                       str(reward_model), "--epochs", "3", "--lr", "1e-3", "--seed", str(seed)],
                      tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert tb_scalars(reward_model)["reward_model/accuracy"][-1][1] > 0.9
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    run = tmp_path / "grpo"
    result = run_cli([
        "algo=grpo", "env=llm", "network=hf", f"network.path={base}", f"env.prompts={prompts}",
        f"env.reward=model:{reward_model}", "env.num_envs=8", "env.max_new_tokens=6",
        "total_steps=8000", "algo.lr=1e-3", f"seed={seed}", f"hydra.run.dir={run}",
    ], tmp_path, timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stderr
    before, after = rule_score(base, None), rule_score(base, run)
    print(f"seed {seed}: rule score {before:.3f} -> {after:.3f}")
    assert after > before + 0.15, (before, after)
