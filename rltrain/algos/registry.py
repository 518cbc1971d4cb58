"""Algorithm classes keyed by `algo.name`; their schemas are in `rltrain.config.algos.ALGO_SCHEMAS`.

Importing this module imports every algorithm (and torch): only the runner and the commands that
build an agent need it, never config composition or `rltrain --help`.
"""

from __future__ import annotations

from rltrain.algos.a2c import A2C
from rltrain.algos.a3c import A3C
from rltrain.algos.bandit import LinearThompson, LinUCB
from rltrain.algos.base import Algorithm
from rltrain.algos.dqn import DQN
from rltrain.algos.grpo import GRPO
from rltrain.algos.planning import PolicyIteration, ValueIteration
from rltrain.algos.ppo import PPO, TokenPPO
from rltrain.algos.reinforce import Reinforce
from rltrain.algos.sac import SAC
from rltrain.algos.tabular import ExpectedSarsa, QLearning, Sarsa
from rltrain.algos.td3 import DDPG, TD3
from rltrain.algos.trpo import TRPO

ALGORITHMS: dict[str, type[Algorithm]] = {
    "ppo": PPO,
    "dqn": DQN,
    "q_learning": QLearning,
    "sarsa": Sarsa,
    "expected_sarsa": ExpectedSarsa,
    "value_iteration": ValueIteration,
    "policy_iteration": PolicyIteration,
    "reinforce": Reinforce,
    "a2c": A2C,
    "a3c": A3C,
    "grpo": GRPO,
    "ucb": LinUCB,
    "thompson": LinearThompson,
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "trpo": TRPO,
}

# on env=text an algorithm learns a token policy (rltrain/algos/token_rl.py)
TEXT_ALGORITHMS: dict[str, type[Algorithm]] = {}
TEXT_ALGORITHMS["ppo"] = TokenPPO
TEXT_ALGORITHMS["grpo"] = GRPO


def algorithm_class(algo: str, env: str) -> type[Algorithm]:
    """The class that trains `algo` on `env` (validation has refused impossible pairs)."""
    return TEXT_ALGORITHMS[algo] if env == "text" else ALGORITHMS[algo]
