"""Algorithm registry keyed by `algo.name`: schema, implementation and a one-line description."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    module: str  # rltrain.algos.<module> holds both the config dataclass and the algorithm
    config: str
    cls: str
    description: str

    def config_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.config)  # type: ignore[no-any-return]

    def algorithm_class(self) -> Any:
        return getattr(importlib.import_module(self.module), self.cls)


ALGOS: dict[str, AlgoSpec] = {
    spec.name: spec
    for spec in [
        AlgoSpec(
            "ppo",
            "rltrain.algos.ppo",
            "PPOConfig",
            "PPO",
            "proximal policy optimisation with GAE (Schulman et al. 2017)",
        ),
        AlgoSpec(
            "dqn",
            "rltrain.algos.dqn",
            "DQNConfig",
            "DQN",
            "deep Q-network; flags: double, dueling, n_step, prioritized (Mnih et al. 2015)",
        ),
        AlgoSpec(
            "q_learning",
            "rltrain.algos.tabular",
            "QLearningConfig",
            "QLearning",
            "tabular Q-learning, off-policy TD control (Watkins 1989)",
        ),
        AlgoSpec(
            "sarsa",
            "rltrain.algos.tabular",
            "SarsaConfig",
            "Sarsa",
            "tabular SARSA, on-policy TD control (Rummery & Niranjan 1994)",
        ),
        AlgoSpec(
            "expected_sarsa",
            "rltrain.algos.tabular",
            "ExpectedSarsaConfig",
            "ExpectedSarsa",
            "tabular expected SARSA (van Seijen et al. 2009)",
        ),
        AlgoSpec(
            "value_iteration",
            "rltrain.algos.planning",
            "ValueIterationConfig",
            "ValueIteration",
            "value iteration on the env's exact model (Bellman 1957)",
        ),
        AlgoSpec(
            "policy_iteration",
            "rltrain.algos.planning",
            "PolicyIterationConfig",
            "PolicyIteration",
            "policy iteration on the env's exact model (Howard 1960)",
        ),
        AlgoSpec(
            "reinforce",
            "rltrain.algos.reinforce",
            "ReinforceConfig",
            "Reinforce",
            "Monte-Carlo policy gradient with a learned baseline (Williams 1992)",
        ),
        AlgoSpec(
            "a2c",
            "rltrain.algos.a2c",
            "A2CConfig",
            "A2C",
            "synchronous n-step advantage actor-critic (Mnih et al. 2016)",
        ),
        AlgoSpec(
            "a3c",
            "rltrain.algos.a3c",
            "A3CConfig",
            "A3C",
            "asynchronous advantage actor-critic, worker processes (Mnih et al. 2016)",
        ),
    ]
}
