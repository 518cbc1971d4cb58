"""The token MDP (`env=text`): one episode is one completion of a prompt.

State: the prompt, a separator and the tokens generated so far; action: the next token (a digit
or EOS); the episode ends at EOS or after `env.max_new_tokens` tokens, and the task's reward
scores the finished completion. Tokens: digits 0..num_digits-1, then SEP, EOS and PAD.
The built-in tasks are small enough for the exact KL-regularized optimum (rltrain/blocks/
kl_optimum.py): `sort` (the prompt's digits in order), `reverse` (the prompt backwards) and
`sum` (digits that add up to the prompt's sum).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain.config.envs import TASKS, TextEnvConfig
from rltrain.envs.vec import Episodes, Transition
from rltrain.errors import UserError


@dataclass(frozen=True)
class Vocab:
    num_digits: int

    @property
    def sep(self) -> int:
        return self.num_digits

    @property
    def eos(self) -> int:
        return self.num_digits + 1

    @property
    def pad(self) -> int:
        return self.num_digits + 2

    @property
    def num_actions(self) -> int:
        """The policy's choices: a digit or EOS (SEP is the action index of EOS minus one)."""
        return self.num_digits + 1

    @property
    def size(self) -> int:
        return self.num_digits + 3

    def action_to_token(self, actions: np.ndarray) -> np.ndarray:
        """Action num_digits is EOS; the others are digits."""
        return np.where(actions == self.num_digits, self.eos, actions)

    def text(self, tokens: list[int] | np.ndarray) -> str:
        names = {self.sep: "|", self.eos: "<eos>", self.pad: ""}
        return " ".join(names.get(int(t), str(int(t))) for t in tokens if int(t) != self.pad)


def match_reward(completion: tuple[int, ...], target: tuple[int, ...]) -> float:
    """R = (# positions i with y_i = target_i) / |target| - 0.5 [|y| != |target|]."""
    hits = sum(1 for a, b in zip(completion, target, strict=False) if a == b)
    return hits / len(target) - (0.5 if len(completion) != len(target) else 0.0)


def sum_reward(completion: tuple[int, ...], target: int) -> float:
    """R = max(0, 1 - |sum(y) - target| / 3) for a non-empty y, else 0."""
    if not completion:
        return 0.0
    return max(0.0, 1.0 - abs(sum(completion) - target) / 3.0)


class TextTask:
    """A built-in task: its prompts, its reward and its noisy demonstrations."""

    def __init__(self, cfg: TextEnvConfig) -> None:
        if cfg.task not in TASKS:
            raise UserError(f"env.task={cfg.task} is not known; choose one of {', '.join(TASKS)}")
        self.cfg, self.name = cfg, cfg.task
        self.vocab = Vocab(cfg.num_digits)
        self.prompt_len, self.max_new_tokens = cfg.prompt_len, cfg.max_new_tokens
        self.prompts = self._load_prompts(cfg)
        if self.name in ("sort", "reverse") and self.prompt_len > self.max_new_tokens:
            raise UserError(
                f"env.task={self.name} answers with {self.prompt_len} digits but "
                f"env.max_new_tokens={self.max_new_tokens}; use env.max_new_tokens>="
                f"{self.prompt_len}"
            )

    def _load_prompts(self, cfg: TextEnvConfig) -> np.ndarray:
        """Every digit string of length prompt_len, or the lines of `env.prompts` (e.g. 3102)."""
        if cfg.prompts is None:
            every = list(itertools.product(range(cfg.num_digits), repeat=cfg.prompt_len))
            return np.array(every, dtype=np.int64)
        path = Path(cfg.prompts)
        if not path.is_file():
            raise UserError(f"env.prompts={cfg.prompts} is not a file (one prompt per line)")
        rows: list[list[int]] = []
        for number, line in enumerate(path.read_text().split(), 1):
            digits = [int(c) for c in line if c.isdigit()]
            if len(digits) != cfg.prompt_len or max(digits) >= cfg.num_digits:
                raise UserError(
                    f"env.prompts line {number} ({line!r}) must be {cfg.prompt_len} digits below "
                    f"{cfg.num_digits}"
                )
            rows.append(digits)
        if not rows:
            raise UserError(f"env.prompts={cfg.prompts} holds no prompt")
        return np.array(rows, dtype=np.int64)

    def target(self, prompt: tuple[int, ...]) -> tuple[int, ...]:
        """A correct answer (for `sum`: greedy digits adding up to the target)."""
        if self.name == "sort":
            return tuple(sorted(prompt))
        if self.name == "reverse":
            return tuple(reversed(prompt))
        left, out = sum(prompt), list[int]()
        while left > 0 and len(out) < self.max_new_tokens:
            out.append(min(left, self.vocab.num_digits - 1))
            left -= out[-1]
        return tuple(out) or (0,)

    def reward(self, prompt: tuple[int, ...], completion: tuple[int, ...]) -> float:
        """R(x, y) of a finished completion (digits only, EOS removed)."""
        if self.name == "sum":
            return sum_reward(completion, sum(prompt))
        return match_reward(completion, self.target(prompt))

    def demonstration(self, prompt: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        """Fluent but noisy text for the reference: the answer with probability demo_quality,
        else the answer with one digit changed, else random digits of a random length."""
        answer = self.target(prompt)
        u = rng.random()
        if u < self.cfg.demo_quality:
            return answer
        if u < (1 + self.cfg.demo_quality) / 2:
            changed = list(answer)
            changed[int(rng.integers(len(changed)))] = int(rng.integers(self.vocab.num_digits))
            return tuple(changed)
        length = int(rng.integers(1, self.max_new_tokens + 1))
        return tuple(int(d) for d in rng.integers(0, self.vocab.num_digits, length))

    def sample_prompts(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return self.prompts[rng.integers(0, len(self.prompts), count)]

    def encode(self, prompts: np.ndarray) -> np.ndarray:
        """[B, P] prompts -> [B, P + 1 + max_new_tokens] token buffers: prompt, SEP, then PAD."""
        out = np.full((len(prompts), self.prompt_len + 1 + self.max_new_tokens), self.vocab.pad)
        out[:, : self.prompt_len] = prompts
        out[:, self.prompt_len] = self.vocab.sep
        return out

    def completion(self, tokens: np.ndarray) -> tuple[int, ...]:
        """The digits after SEP up to EOS / PAD, from one token buffer."""
        out = []
        for t in tokens[self.prompt_len + 1 :]:
            if t >= self.vocab.num_digits:
                break
            out.append(int(t))
        return tuple(out)


class CompletionVecEnv:
    """What both text envs' VecEnv forms share: the finished completions kept as episodes, and
    no state of their own in a checkpoint (the algorithms generate their own completions; an
    evaluation starts afresh)."""

    def __init__(self) -> None:
        self._done: list[tuple[float, int]] = []

    def pop_episodes(self) -> Episodes:
        done, self._done = self._done, []
        return (np.array([r for r, _ in done], dtype=np.float64),
                np.array([n for _, n in done], dtype=np.int64))  # fmt: skip

    def state_dict(self) -> dict[str, Any] | None:
        return None  # the text algorithms generate their own completions; eval starts afresh

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TextVecEnv(CompletionVecEnv):
    """`num_envs` prompts completed token by token (the VecEnv interface, numpy throughout).

    Observation: the token buffer [P + 1 + max_new_tokens] (PAD after the current position);
    action: a digit or EOS (index num_digits). Reaching max_new_tokens ends the MDP (it is part
    of the task, not a time limit), so both ends are terminations.
    """

    def __init__(self, cfg: TextEnvConfig, num_envs: int, seed: int) -> None:
        self.task = TextTask(cfg)
        self.num_envs, self.vocab = num_envs, self.task.vocab
        width = self.task.prompt_len + 1 + self.task.max_new_tokens
        box = gym.spaces.Box(0, self.vocab.size - 1, (width,), np.int64)
        self.single_observation_space: gym.Space[Any] = box
        self.single_action_space: gym.Space[Any] = gym.spaces.Discrete(self.vocab.num_actions)
        self.rng = np.random.default_rng(seed)
        self.obs = self.task.encode(self.task.sample_prompts(self.rng, num_envs))
        self.length = np.zeros(num_envs, dtype=np.int64)
        super().__init__()

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.obs = self.task.encode(self.task.sample_prompts(self.rng, self.num_envs))
        self.length[:] = 0
        return self.obs.copy()

    def step(self, actions: np.ndarray) -> Transition:
        tokens = self.vocab.action_to_token(np.asarray(actions, dtype=np.int64))
        rows = np.arange(self.num_envs)
        self.obs[rows, self.task.prompt_len + 1 + self.length] = tokens
        self.length += 1
        done = (tokens == self.vocab.eos) | (self.length >= self.task.max_new_tokens)
        reward = np.zeros(self.num_envs, dtype=np.float32)
        final = self.obs.copy()
        for i in np.flatnonzero(done):
            prompt = tuple(int(t) for t in self.obs[i, : self.task.prompt_len])
            reward[i] = self.task.reward(prompt, self.task.completion(self.obs[i]))
            self._done.append((float(reward[i]), int(self.length[i])))
            self.obs[i] = self.task.encode(self.task.sample_prompts(self.rng, 1))[0]
            self.length[i] = 0
        return Transition(self.obs.copy(), reward, done, np.zeros_like(done), final)
