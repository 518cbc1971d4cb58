"""env=llm: the user's prompts completed by a Hugging Face causal LM, scored by a reward on the
text. The MDP is env=text's with a real tokenizer: the state is the prompt plus the tokens
generated so far, the action is the next token id, the episode ends at the tokenizer's EOS or
after env.max_new_tokens, and R(prompt, completion) is paid at the last token.

Prompts are tokenized once and left-padded to the longest, so a batch of buffers is
[B, P + L]: prompt (PAD on its left), then the completion (PAD after it). PAD is -1 in the
buffers (the tokenizer's pad id may be its EOS); `attention` turns them into a mask.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain.config.envs import LLMEnvConfig
from rltrain.envs.text import CompletionVecEnv
from rltrain.envs.vec import Transition
from rltrain.errors import UserError

PAD = -1
RewardFn = Callable[[str, str, "str | None"], float]


@dataclass(frozen=True)
class Prompt:
    text: str
    answer: str | None = None  # JSONL "answer": what env.reward=exact compares with


def load_prompts(path_str: str) -> list[Prompt]:
    """The prompts of a .txt (one per non-empty line) or .jsonl file ("prompt", "answer")."""
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise UserError(f"env.prompts={path_str}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(
            f"env.prompts={path_str} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    prompts: list[Prompt] = []
    jsonl = path.suffix == ".jsonl"
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not jsonl:
            prompts.append(Prompt(line))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"env.prompts={path_str} line {number} is not JSON: {exc.msg}"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise UserError(f'env.prompts={path_str} line {number} has no "prompt" string field')
        answer = row.get("answer")
        prompts.append(Prompt(row["prompt"], None if answer is None else str(answer)))
    if not prompts:
        raise UserError(f"env.prompts={path_str} holds no prompts; write one prompt per line")
    return prompts


def _length_reward(spec: str) -> RewardFn:
    match = re.fullmatch(r"(\d+)-(\d+)", spec)
    if match is None or int(match[1]) > int(match[2]):
        raise UserError(f"env.reward=length:{spec} must be length:MIN-MAX in words, MIN <= MAX")
    low, high = int(match[1]), int(match[2])

    def reward(prompt: str, completion: str, answer: str | None) -> float:
        """1 inside [MIN, MAX] words, falling by 0.1 per word outside it (floor -1)."""
        n = len(completion.split())
        miss = max(low - n, n - high, 0)
        return max(-1.0, 1.0 - 0.1 * miss) if miss else 1.0

    return reward


def _regex_reward(pattern: str, spec: str) -> RewardFn:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UserError(f"env.reward={spec}: not a regular expression ({exc})") from None

    def reward(prompt: str, completion: str, answer: str | None) -> float:
        return 1.0 if compiled.search(completion) else 0.0

    return reward


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _exact_reward(prompt: str, completion: str, answer: str | None) -> float:
    """1 when the completion answers: for a numeric answer, the last number in the completion
    equals it (as in math word problems, "2 + 3 = 5"); otherwise the stripped completion is the
    answer."""
    if answer is None:
        return 0.0
    if NUMBER.fullmatch(answer.strip()):
        numbers = NUMBER.findall(completion)
        return 1.0 if numbers and float(numbers[-1]) == float(answer) else 0.0
    return 1.0 if completion.strip() == answer.strip() else 0.0


def _user_reward(spec: str) -> RewardFn:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(
            f"env.reward={spec}: cannot import {module_name} ({exc.msg}); put its directory on "
            "PYTHONPATH"
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"env.reward={spec}: {module_name} has no function {attr}")

    def reward(prompt: str, completion: str, answer: str | None) -> float:
        return fn(prompt, completion)  # type: ignore[no-any-return]

    reward.__qualname__ = spec
    return reward


def _model_reward(run_dir: str) -> RewardFn:
    from rltrain.networks.reward_model import load_reward_model

    model = load_reward_model(run_dir)

    def reward(prompt: str, completion: str, answer: str | None) -> float:
        return float(model.score([prompt], [completion])[0])

    return reward


def make_reward(spec: str, prompts: list[Prompt]) -> RewardFn:
    """The reward named by env.reward (see LLMEnvConfig)."""
    kind, _, arg = spec.partition(":")
    if kind == "length" and arg:
        return _length_reward(arg)
    if kind in ("keyword", "regex") and arg:
        return _regex_reward(re.escape(arg) if kind == "keyword" else arg, spec)
    if spec == "exact":
        if any(p.answer is None for p in prompts):
            raise UserError('env.reward=exact needs an "answer" field on every JSONL prompt')
        return _exact_reward
    if kind == "model" and arg:
        return _model_reward(arg)
    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
        return _user_reward(spec)
    raise UserError(
        f"env.reward={spec} is not known; use length:MIN-MAX, keyword:WORD, regex:PATTERN, "
        "exact, model:RUN_DIR (rltrain reward-model) or module.path:function"
    )


def load_tokenizer(path: str, gguf_file: str | None = None) -> Any:
    """The tokenizer saved beside the model (or inside its GGUF file), offline; a missing pad
    token becomes EOS."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UserError(
            "env=llm needs transformers: pip install 'rltrain[llm]' (make install has it)"
        ) from None
    try:
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, **extra)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"network.path={path} has no tokenizer transformers can load: {first}"
        ) from None
    if tokenizer.eos_token_id is None:
        raise UserError(f"network.path={path}: the tokenizer has no EOS token to end completions")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # only ever masked out
    return tokenizer


class LLMTask:
    """Prompts as token ids, the reward on decoded text, and the buffer layout."""

    def __init__(self, cfg: LLMEnvConfig) -> None:
        assert cfg.prompts is not None and cfg.tokenizer is not None  # validated
        self.cfg = cfg
        self.prompts = load_prompts(cfg.prompts)
        self.reward_fn = make_reward(cfg.reward, self.prompts)
        self.tokenizer = load_tokenizer(cfg.tokenizer, cfg.gguf_file)
        self.eos, self.pad_id = int(self.tokenizer.eos_token_id), int(self.tokenizer.pad_token_id)
        if cfg.chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise UserError(
                f"env.chat_template=true, but the tokenizer of {cfg.tokenizer} has no chat "
                "template; set env.chat_template=false"
            )
        ids = [self._prompt_ids(p.text) for p in self.prompts]
        empty = [i for i, row in enumerate(ids) if not row]
        if empty:
            raise UserError(f"env.prompts: prompt {empty[0] + 1} has no tokens; remove it")
        self.prompt_len, self.max_new_tokens = max(map(len, ids)), cfg.max_new_tokens
        self.prompt_ids = np.full((len(ids), self.prompt_len), PAD, dtype=np.int64)
        for i, row in enumerate(ids):
            self.prompt_ids[i, self.prompt_len - len(row) :] = row

    def _prompt_ids(self, text: str) -> list[int]:
        """The prompt's token ids: as a user turn of the chat template, ready for the
        assistant's answer (env.chat_template), or the plain text."""
        if not self.cfg.chat_template:
            return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        encoded = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
        )
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return [int(t) for t in ids]

    def stopped(self, completion: str) -> bool:
        """Whether a stop string (env.stop) has appeared: the completion ends there."""
        return any(stop in completion for stop in self.cfg.stop)

    def cut(self, completion: str) -> str:
        """The completion up to its first stop string: what the reward reads."""
        for stop in self.cfg.stop:
            completion = completion.split(stop, 1)[0]
        return completion

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def sample_prompts(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Indices of `count` prompts drawn uniformly."""
        return rng.integers(0, len(self.prompts), count)

    def encode(self, indices: np.ndarray) -> np.ndarray:
        """[B] prompt indices -> [B, P + L] buffers (prompt left-padded, PAD after it)."""
        out = np.full((len(indices), self.prompt_len + self.max_new_tokens), PAD, np.int64)
        out[:, : self.prompt_len] = self.prompt_ids[indices]
        return out

    def decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode([t for t in tokens if t != self.eos],
                                         skip_special_tokens=True))  # fmt: skip

    def completion_text(self, actions: np.ndarray, length: int) -> str:
        """The completion's text (EOS and what follows it, and any stop string, left out)."""
        return self.cut(self.decode([int(t) for t in actions[:length]]))

    def reward(self, index: int, completion: str) -> float:
        """R(prompt, completion); a reward function that raises or returns a non-number or a
        non-finite number stops the run with one line naming it and the prompt."""
        prompt = self.prompts[index]
        name = self.cfg.reward
        try:
            value = float(self.reward_fn(prompt.text, completion, prompt.answer))
        except Exception as exc:  # the user's code: any failure is reported
            raise UserError(
                f"env.reward={name} raised {type(exc).__name__}: {exc} on prompt "
                f"{index + 1} ({_short(prompt.text)!r}); fix the function, then `rltrain resume`"
            ) from None
        if not math.isfinite(value):
            raise UserError(
                f"env.reward={name} returned {value} on prompt {index + 1} "
                f"({_short(prompt.text)!r}); a reward must be a finite number"
            )
        return value

    def rewards(self, indices: np.ndarray, actions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return np.array([
            self.reward(int(i), self.completion_text(a, int(n)))
            for i, a, n in zip(indices, actions, lengths, strict=True)
        ], dtype=np.float32)  # fmt: skip


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class LLMVecEnv(CompletionVecEnv):
    """`num_envs` prompts completed token by token (the VecEnv interface), for evaluation.

    Observation: the buffer [P + L] (PAD = -1 where nothing is); action: a token id. Both
    ends (EOS, the length limit) are terminations: the limit is part of the task.
    """

    def __init__(self, cfg: LLMEnvConfig, num_envs: int, seed: int) -> None:
        self.task, self.cfg = LLMTask(cfg), cfg
        self.num_envs = num_envs
        width = self.task.prompt_len + self.task.max_new_tokens
        box = gym.spaces.Box(PAD, self.task.vocab_size - 1, (width,), np.int64)
        self.single_observation_space: gym.Space[Any] = box
        self.single_action_space: gym.Space[Any] = gym.spaces.Discrete(self.task.vocab_size)
        self.rng = np.random.default_rng(seed)
        self.index = np.zeros(num_envs, dtype=np.int64)  # which prompt each env completes
        self.obs = np.zeros((num_envs, width), dtype=np.int64)
        self.length = np.zeros(num_envs, dtype=np.int64)
        self._new(np.arange(num_envs))
        super().__init__()

    def _new(self, rows: np.ndarray) -> None:
        """Fresh prompts in `rows`."""
        self.index[rows] = self.task.sample_prompts(self.rng, len(rows))
        self.obs[rows] = self.task.encode(self.index[rows])
        self.length[rows] = 0

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._new(np.arange(self.num_envs))
        return self.obs.copy()

    def step(self, actions: np.ndarray) -> Transition:
        actions = np.asarray(actions, dtype=np.int64)
        rows, p = np.arange(self.num_envs), self.task.prompt_len
        self.obs[rows, p + self.length] = actions
        self.length += 1
        done = (actions == self.task.eos) | (self.length >= self.task.max_new_tokens)
        if self.cfg.stop:
            for i in np.flatnonzero(~done):
                text = self.task.decode(self.obs[i, p : p + self.length[i]].tolist())
                done[i] = self.task.stopped(text)
        reward = np.zeros(self.num_envs, dtype=np.float32)
        final = self.obs.copy()
        ended = np.flatnonzero(done)
        for i in ended:
            text = self.task.completion_text(self.obs[i, p:], int(self.length[i]))
            reward[i] = self.task.reward(int(self.index[i]), text)
            self._done.append((float(reward[i]), int(self.length[i])))
        if len(ended):
            self._new(ended)
        return Transition(self.obs.copy(), reward, done, np.zeros_like(done), final)
