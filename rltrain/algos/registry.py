"""Algorithm classes keyed by `algo.name`; their schemas are in `rltrain.config.algos.ALGO_SCHEMAS`.

Names map to `module:Class` strings, and `algorithm_class` imports only the module of the class
asked for: a PPO run does not import DQN's replay buffers, the token-level algorithms or the
planners (each a few tens of milliseconds of start-up, more on a busy machine). Every algorithm
module imports torch; config composition and `rltrain --help` never import this module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rltrain.algos.base import Algorithm

ALGORITHMS: dict[str, str] = {
    "ppo": "rltrain.algos.ppo:PPO",
    "dqn": "rltrain.algos.dqn:DQN",
    "q_learning": "rltrain.algos.tabular:QLearning",
    "sarsa": "rltrain.algos.tabular:Sarsa",
    "expected_sarsa": "rltrain.algos.tabular:ExpectedSarsa",
    "value_iteration": "rltrain.algos.planning:ValueIteration",
    "policy_iteration": "rltrain.algos.planning:PolicyIteration",
    "reinforce": "rltrain.algos.reinforce:Reinforce",
    "a2c": "rltrain.algos.a2c:A2C",
    "a3c": "rltrain.algos.a3c:A3C",
    "grpo": "rltrain.algos.grpo:GRPO",
    "ucb": "rltrain.algos.bandit:LinUCB",
    "thompson": "rltrain.algos.bandit:LinearThompson",
    "sac": "rltrain.algos.sac:SAC",
    "td3": "rltrain.algos.td3:TD3",
    "ddpg": "rltrain.algos.td3:DDPG",
    "trpo": "rltrain.algos.trpo:TRPO",
}

# on env=text and env=llm an algorithm learns a token policy (rltrain/algos/token_rl.py)
TEXT_ALGORITHMS: dict[str, str] = {
    "ppo": "rltrain.algos.ppo:TokenPPO",
    "grpo": "rltrain.algos.grpo:GRPO",
}


def algorithm_class(algo: str, env: str) -> type[Algorithm]:
    """The class that trains `algo` on `env` (validation has refused impossible pairs); imports
    its module on first use."""
    where = TEXT_ALGORITHMS[algo] if env in ("text", "llm") else ALGORITHMS[algo]
    module, _, name = where.partition(":")
    cls: type[Algorithm] = getattr(importlib.import_module(module), name)
    return cls
