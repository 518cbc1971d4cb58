"""Every environment's schema (`env.<key>`), keyed by `env.name` in `ENV_SCHEMAS`.

Several env options share one schema: `env=cartpole`, `pendulum`, `frozen_lake`, ... are presets of
`GymEnvConfig` (any gymnasium id). Validation that needs the env itself (a layout, an ALE game)
happens where the env is built, in `rltrain.envs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rltrain.errors import UserError


@dataclass
class GymEnvConfig:
    """Any gymnasium env (`env=gym env.id=...`); `env=cartpole` is a preset of it.

    Your own env: `env.id=pkg.module:EnvId-v0` imports pkg.module (which registers EnvId-v0) and
    makes the id, as `gymnasium.make` does; `env.entry_point=pkg.module:MyEnv` builds a class that
    is registered nowhere (env.id is then not used)."""

    name: str = "gym"
    # A registered gymnasium id, or `module:id` to import the module that registers it first.
    id: str = "CartPole-v1"
    # `module:Class` (or `module:function`) of an unregistered env; null: build env.id.
    entry_point: str | None = None
    # Keyword arguments for the env's constructor, e.g. env.kwargs={is_slippery:false}.
    kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 1
    # sync | async (subprocesses; pays off for slow envs only) | batched (CartPole-v1 only:
    # all envs stepped as one numpy array program, same dynamics; see envs/batched_cartpole.py)
    vectorization: str = "sync"
    max_episode_steps: int | None = None  # None keeps the id's registered time limit

    def __post_init__(self) -> None:
        if self.entry_point is not None and self.entry_point.count(":") != 1:
            raise UserError(
                f"env.entry_point={self.entry_point} must be module:Class, e.g. "
                "env.entry_point=my_pkg.envs:MyEnv"
            )
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise UserError(
                f"env.max_episode_steps={self.max_episode_steps} must be at least 1, or null to "
                "keep the env's own time limit"
            )


@dataclass
class GridWorldConfig:
    """Schema of `env=gridworld` (the defaults live here, the YAML only holds presets)."""

    # Config-group option name; the env factory dispatches on it.
    name: str = "gridworld"
    # Number of parallel copies of the environment.
    num_envs: int = 1
    # Vector-env backend: "sync" or "async".
    vectorization: str = "sync"
    # A named layout (see LAYOUTS: 4x4, cliff, maze8) or a map string, rows separated by '/'
    # or newlines: S start, G goal, H trap, # wall, . floor; e.g. 'S..#/..H./...G'.
    layout: str = "4x4"
    # Probability that a move goes sideways: the intended move happens with 1 - slip, each of
    # the two perpendicular moves with slip / 2.
    slip: float = 0.0
    # Reward for entering a floor (or start) cell, and for bumping into a wall or the edge.
    step_reward: float = 0.0
    # Reward for entering the goal G; the episode terminates.
    goal_reward: float = 1.0
    # Reward for entering a trap H; the episode terminates.
    trap_reward: float = -1.0
    # Episode length limit; the last step returns truncated=True.
    max_steps: int = 100
    # Training episodes start in a uniformly random cell that S can reach and that is not a
    # goal or trap (the state half of exploring starts, with algo.random_first_action);
    # evaluation episodes always start at S.
    random_start: bool = False

@dataclass
class TrafficLightConfig:
    """Schema of `env=traffic_light`."""

    # Config-group option name; the env factory dispatches on it.
    name: str = "traffic_light"
    # Number of parallel copies of the environment.
    num_envs: int = 1
    # Vector-env backend: "sync" or "async".
    vectorization: str = "sync"
    # Chance that the light changes colour after each step.
    switch_prob: float = 0.3
    # Reward for going forward on green.
    green_reward: float = 1.0
    # Reward (a negative number) for going forward on red.
    red_penalty: float = -5.0
    # Episode length; the episode never terminates, the last step returns truncated=True.
    max_steps: int = 50

@dataclass
class AtariConfig:
    """`env=atari`: any ALE game by snake_case name (`env.game=space_invaders`)."""

    name: str = "atari"
    game: str = "breakout"
    num_envs: int = 8
    backend: str = "native"  # native (ale-py C++ vector env) | sync | async (gymnasium)
    # Unused for Atari (`backend` picks the vectorization); kept so every env config has it.
    vectorization: str = "sync"
    frame_skip: int = 4
    frame_stack: int = 4
    screen_size: int = 84
    noop_max: int = 30
    terminal_on_life_loss: bool = True  # training only
    clip_rewards: bool = True  # training only
    repeat_action_probability: float = 0.25  # sticky actions, Machado et al. 2018
    full_action_space: bool = False
    max_episode_frames: int = 108_000  # truncation: 30 min of play (Machado et al. 2018)

RECOMMENDER_VIEWS = ("tabular", "features", "bandit")


@dataclass
class RecommenderConfig:
    """Schema of `env=recommender`: simulated users clicking (or not) on recommended items."""

    # Config-group option name; the env factory dispatches on it.
    name: str = "recommender"
    # Number of parallel copies of the environment.
    num_envs: int = 1
    # Vector-env backend: "sync" or "async".
    vectorization: str = "sync"
    # tabular: observation = state index, exact model env.unwrapped.P (for tables and planners);
    # features: observation = feature vector (segment, fatigue per category, misses), for dqn/ppo;
    # bandit: one-step episodes, observation = the user's interest vector, for ucb/thompson
    view: str = "tabular"
    # user segments: each has its own interest in every category; null: 3, 4 on features
    n_segments: int | None = None
    # item categories; null: 3 for the tabular view, 24 for features, 8 for bandit
    n_categories: int | None = None
    # catalogue size (item i belongs to category i mod n_categories); null: n_categories
    # (tabular), 5 per category (features), 2 per category (bandit)
    n_items: int | None = None
    # a segment's interest in a category is drawn uniformly in [interest_min, interest_max]
    interest_min: float = 0.1
    interest_max: float | None = None  # null: 0.9, 1.0 on features
    # an item's quality (click multiplier) is drawn uniformly in [quality_min, 1]
    quality_min: float = 0.6
    # click probability lost per fatigue level of the item's category: x (1 - fatigue)^level
    fatigue: float = 0.5
    # fatigue levels are capped here; showing a category adds one level, not showing it removes one
    max_fatigue: int = 1
    # chance that a user leaves after a non-click with no earlier consecutive non-click
    leave_base: float | None = None  # null: 0.1, 0.3 on features
    # added to the leave chance for each earlier consecutive non-click
    leave_rate: float | None = None  # null: 0.15, 0.3 on features
    # consecutive non-clicks are counted up to this cap (a click resets the count)
    max_misses: int = 2
    # chance that a click moves the user to the segment most interested in the clicked category
    drift: float | None = None  # null: 0.3, 0.8 on features
    # session length limit; the last step returns truncated=True
    max_steps: int = 100
    # items per recommendation (tabular and features views): the user reads them in order and
    # clicks at most one; the action indexes the slates, combinations of slate_size items
    slate_size: int = 1
    # bandit view: std of the Gaussian noise added to the segment's interests (each user's context)
    context_noise: float = 0.1
    # seeds the catalogue and the population (interests, qualities), not the episodes
    catalogue_seed: int = 0


ENV_SCHEMAS: dict[str, type] = {
    "cartpole": GymEnvConfig,
    "pendulum": GymEnvConfig,
    "mujoco": GymEnvConfig,  # any gymnasium MuJoCo id (the `mujoco` extra)
    "gym": GymEnvConfig,
    "gridworld": GridWorldConfig,
    "traffic_light": TrafficLightConfig,
    "frozen_lake": GymEnvConfig,
    "cliff_walking": GymEnvConfig,
    "taxi": GymEnvConfig,
    "atari": AtariConfig,
    "recommender": RecommenderConfig,
}


TASKS = ("sort", "reverse", "sum")


@dataclass
class TextEnvConfig:
    """Schema of `env=text`: the token MDP of completing a prompt (rltrain/envs/text.py)."""

    name: str = "text"
    task: str = "sort"  # sort | reverse | sum
    # prompts completed together per iteration (GRPO: times algo.group_size completions each)
    num_envs: int = 32
    vectorization: str = "sync"  # unused: the text env is one numpy batch
    # KL coefficient of the objective E[R] - beta KL(pi || pi_ref), and of the oracle's optimum
    beta: float = 0.1
    max_new_tokens: int = 4  # a completion ends at EOS or after this many tokens
    prompt_len: int = 3  # digits per prompt
    num_digits: int = 4  # the digit alphabet 0..num_digits-1 (plus SEP, EOS, PAD tokens)
    # a file with one prompt per line (digits, e.g. 3102); null: every digit string
    prompts: str | None = None
    # the reference: supervised next-token training on noisy demonstrations of the task
    demo_quality: float = 0.3  # share of demonstrations that are the correct answer
    pretrain_steps: int = 400  # Adam steps of 256 demonstrations each
    # the exact optimum is computed when the prompts' token tree has at most this many prefixes;
    # beyond it the oracle is skipped with one warning line and training goes on
    oracle_max_prefixes: int = 200_000

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"env.task={self.task} is not known; choose one of {', '.join(TASKS)}")
        if self.beta < 0:
            raise UserError(f"env.beta={self.beta} must be >= 0 (the KL coefficient)")
        for key in ("num_envs", "max_new_tokens", "prompt_len", "num_digits", "pretrain_steps"):
            if getattr(self, key) < 1:
                raise UserError(f"env.{key}={getattr(self, key)} must be at least 1")
        if self.num_digits > 10:
            raise UserError(f"env.num_digits={self.num_digits} must be at most 10")
        if not 0.0 <= self.demo_quality <= 1.0:
            raise UserError(f"env.demo_quality={self.demo_quality} must be in [0, 1]")


ENV_SCHEMAS["text"] = TextEnvConfig


@dataclass
class LLMEnvConfig:
    """Schema of `env=llm`: completing the user's prompts with a Hugging Face causal LM
    (network=hf), scored by a reward on the text (rltrain/envs/llm.py, docs/llm.md)."""

    name: str = "llm"
    # a UTF-8 file: one prompt per line (.txt), or JSON lines with a "prompt" field and, for
    # env.reward=exact, an "answer" field (.jsonl)
    prompts: str | None = None
    # length:MIN-MAX (words) | keyword:WORD | regex:PATTERN | exact (the JSONL answer) |
    # model:RUN_DIR (a reward model from `rltrain reward-model`) |
    # module.path:function, the user's (prompt, completion) -> float, imported from the path
    reward: str = "length:5-10"
    num_envs: int = 8  # prompts completed together per iteration (GRPO: x algo.group_size)
    vectorization: str = "sync"  # unused: completions are generated as one batch
    beta: float = 0.05  # the KL coefficient of E[R] - beta KL(pi || pi_ref)
    max_new_tokens: int = 16  # a completion ends at the tokenizer's EOS or after this many
    temperature: float = 1.0  # sampling temperature of the policy during training
    # wrap each prompt as a user turn of the tokenizer's chat template (instruct models)
    chat_template: bool = False
    # a completion also ends when one of these strings appears; the reward reads the text before it
    stop: list[str] = field(default_factory=list)
    tokenizer: str | None = None  # set from network.path (env and network share the model)
    gguf_file: str | None = None  # set from network.gguf_file

    def __post_init__(self) -> None:
        if not self.prompts:
            raise UserError(
                "env=llm needs env.prompts=FILE (one prompt per line, or JSONL with a prompt field)"
            )
        if self.beta < 0:
            raise UserError(f"env.beta={self.beta} must be >= 0 (the KL coefficient)")
        for key in ("num_envs", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise UserError(f"env.{key}={getattr(self, key)} must be at least 1")
        if not self.temperature > 0:
            raise UserError(f"env.temperature={self.temperature} must be > 0")
        if any(not stop for stop in self.stop):
            raise UserError(f"env.stop={list(self.stop)} has an empty string; remove it")


ENV_SCHEMAS["llm"] = LLMEnvConfig
