"""env=llm's stand-in for TextRun: the same calls (sample, score, score_reference, act, rows)
on a Hugging Face causal LM (rltrain/networks/hf.py) and the user's prompts and reward
(rltrain/envs/llm.py), so that TokenPPO and GRPO train either without knowing which.

Buffers are [B, P + L] with PAD = -1: the prompt left-padded to P, then the completion. The
decision of completion step d reads position P - 1 + d (the last token of its state).
There is no exact optimum here (the token tree of a real vocabulary is astronomically large):
what is logged is the reward, the KL to the reference, and V and A per token.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rltrain.algos.base import Context
from rltrain.algos.token_rl import CompletionRecords, Completions
from rltrain.config.envs import LLMEnvConfig
from rltrain.envs.llm import PAD, LLMTask
from rltrain.logging import Recorder
from rltrain.networks.hf import HFPolicy, build_policy

LABEL_CHARS = 14  # prompt characters shown in the picture's label column


def model_inputs(tokens: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """(input ids, attention mask) of PAD = -1 buffers: PAD becomes the tokenizer's pad id,
    masked out."""
    present = tokens >= 0
    return torch.where(present, tokens, pad_id), present.long()


class LMRun(CompletionRecords):
    """The task (prompts, reward, tokenizer), the reference and the sampling of completions."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg: LLMEnvConfig = ctx.cfg.env
        self.task = LLMTask(self.cfg)
        self._policy, self._reference = build_policy(ctx.cfg.network, ctx.device)
        self.temperature = self.cfg.temperature

    def new_policy(self) -> HFPolicy:
        """The policy: the loaded model (LoRA: its adapters) and a value head, trainable."""
        return self._policy.train()

    def prompts(self, count: int) -> np.ndarray:
        return self.task.sample_prompts(self.ctx.rng, count)

    def _log_probs(self, logits: Tensor) -> Tensor:
        return F.log_softmax(logits / self.temperature, dim=-1)

    @torch.no_grad()
    def sample(self, net: HFPolicy, prompts: np.ndarray, greedy: bool = False,
               generator: torch.Generator | None = None) -> Completions:  # fmt: skip
        """One completion per prompt index, generated with the key-value cache."""
        task, device = self.task, self.ctx.device
        p, length, eos = task.prompt_len, task.max_new_tokens, task.eos
        buffers = torch.from_numpy(task.encode(prompts)).to(device)
        ids, attention = model_inputs(buffers[:, :p], task.pad_id)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        was_training = net.training
        net.eval()
        logits, _, cache = net(ids, attention, positions=positions, cache=True, values=False)
        step_logits, next_position = logits[:, -1], positions[:, -1:] + 1
        actions = torch.zeros(len(prompts), length, dtype=torch.int64, device=device)
        mask = torch.zeros(len(prompts), length, device=device)
        alive = torch.ones(len(prompts), dtype=torch.bool, device=device)
        for d in range(length):
            if greedy:
                a = step_logits.argmax(-1)
            else:
                probs = self._log_probs(step_logits).exp()
                a = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            a = torch.where(alive, a, 0)
            actions[:, d], mask[:, d] = a, alive.float()
            buffers[:, p + d] = torch.where(alive, a, PAD)
            alive = alive & (a != eos)
            if task.cfg.stop:  # a stop string ends a completion like EOS (decoded: strings)
                done = [i for i in alive.nonzero().flatten().tolist()
                        if task.stopped(task.decode(actions[i, : d + 1].tolist()))]  # fmt: skip
                alive[done] = False
            if d == length - 1 or not alive.any():
                break
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], 1)
            logits, _, cache = net(torch.where(alive, a, task.pad_id)[:, None], attention,
                                   past=cache, positions=next_position, cache=True,
                                   values=False)  # fmt: skip
            step_logits, next_position = logits[:, -1], next_position + 1
        net.train(was_training)
        lengths = mask.sum(1).long().cpu().numpy()
        rewards = task.rewards(prompts, actions.cpu().numpy(), lengths)
        return Completions(buffers, actions, mask, torch.from_numpy(rewards).to(device))

    def score(self, net: HFPolicy, batch: Completions, rows: Tensor | None = None,
              values: bool = True) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """(log pi(a_t|s_t), V(s_t), H(pi(.|s_t))), each [B, L], from one forward pass;
        without `values` (GRPO, the reference) V is zeros and the hidden states are not kept."""
        tokens, actions = batch.tokens, batch.actions
        if rows is not None:
            tokens, actions = tokens[rows], actions[rows]
        p, length = self.task.prompt_len, self.task.max_new_tokens
        ids, attention = model_inputs(tokens[:, : p + length - 1], self.task.pad_id)
        logits, v, _ = net(ids, attention, values=values)
        log_pi = self._log_probs(logits[:, p - 1 :])
        entropy = -(log_pi.exp() * log_pi).sum(-1)
        chosen = log_pi.gather(2, actions[..., None]).squeeze(2)
        return chosen, torch.zeros_like(chosen) if v is None else v[:, p - 1 :], entropy

    @torch.no_grad()
    def score_reference(self, batch: Completions) -> Tensor:
        if self._reference is not None:
            return self.score(self._reference, batch, values=False)[0]
        with self._policy.reference_mode():
            return self.score(self._policy, batch, values=False)[0]

    @torch.no_grad()
    def act(self, net: HFPolicy, obs: np.ndarray, greedy: bool) -> np.ndarray:
        """Next token ids for env observations (PAD = -1 buffers), from a full forward pass."""
        tokens = torch.from_numpy(np.asarray(obs, dtype=np.int64)).to(self.ctx.device)
        p = self.task.prompt_len
        done = (tokens[:, p:] >= 0).sum(1)
        ids, attention = model_inputs(tokens, self.task.pad_id)
        logits = net(ids, attention, values=False)[0][torch.arange(len(tokens)), p - 1 + done]
        if greedy:
            return logits.argmax(-1).cpu().numpy()
        return torch.multinomial(self._log_probs(logits).exp(), 1).squeeze(1).cpu().numpy()

    def describe(self, buffer: np.ndarray, length: int) -> tuple[str, list[str]]:
        p, tokenizer = self.task.prompt_len, self.task.tokenizer
        prompt = tokenizer.decode([int(t) for t in buffer[:p] if t >= 0], skip_special_tokens=True)
        if len(prompt) > LABEL_CHARS:
            prompt = prompt[: LABEL_CHARS - 1] + "~"
        return prompt, [repr(tokenizer.decode([int(t)]))[1:-1] for t in buffer[p : p + length]]

    def record(self, rec: Recorder, net: Any, value_head: bool = True) -> None:
        pass  # no exact optimum to grade against on a real vocabulary

    def state_dict(self) -> dict[str, Any]:
        return {}  # the reference is the model on disk (or the adapters switched off)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
