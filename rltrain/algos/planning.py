"""Planning on the env's exact model: value iteration and policy iteration (Sutton & Barto ch. 4).

No environment steps are taken: the model comes from the env's toy-text table ``P``
(``rltrain.blocks.dp.model_of``). To fit the trainer loop, one iterate() is one sweep (value
iteration) or one evaluation + improvement round (policy iteration) and counts as one "step",
so `total_steps` caps the sweeps and `logger.log_interval` is in sweeps; the algorithm sets
``finished = True`` at convergence and the loop stops there. ``values/bellman_residual`` is
written once per sweep, at step = sweep number:

    residual = max_s |max_a Q(s, a) - V(s)|,  Q = R + gamma * C V   (the Bellman optimality error)

For value iteration that is ``max_s |V_{k+1}(s) - V_k(s)|``; policy iteration's V is V_pi, and
the residual is 0 exactly when pi is optimal.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.algos.base import Algorithm, Context
from rltrain.algos.oracle import (
    TableInfo,
    check_discrete,
    greedy,
    record_table,
    table_info,
    table_text,
)
from rltrain.blocks.dp import (
    TabularModel,
    bellman_q,
    can_end,
    decision_states,
    ending_states,
    greedy_policy,
    loop_gain,
    policy_iteration_round,
    proper_policy,
    value_iteration_sweep,
)
from rltrain.config.algos import PolicyIterationConfig, ValueIterationConfig
from rltrain.errors import UserError


def _model_or_error(name: str, info: TableInfo) -> TabularModel:
    if info.model is None:
        raise UserError(_no_model(name))
    return info.model


def _no_model(name: str) -> str:
    return (
        f"algo={name} needs an environment model (env.unwrapped.P); use q_learning/sarsa for "
        "model-free learning, or dqn/ppo for CartPole"
    )


# What to change when gamma = 1 has no finite optimum; rewards are the gridworld's knob.
_UNDISCOUNTED_FIX = "use algo.gamma<1, or rewards that make every loop cost (env.step_reward<0)"

# An average reward per step above this in a loop that never ends is growth, not round-off.
_GAIN_ATOL = 1e-9


class _Planner(Algorithm):
    """What value and policy iteration share: the model, the Q table, logging and checkpoints."""

    algo_name = "planner"

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        if not isinstance(obs_space, gym.spaces.Discrete):
            raise UserError(_no_model(cls.algo_name))  # no finite model without finite states
        check_discrete(cls.algo_name, obs_space, action_space)

    def __init__(self, gamma: float, ctx: Context) -> None:
        self.ctx = ctx
        self.gamma = gamma
        self.info = table_info(ctx.cfg.env, gamma)
        self.model = _model_or_error(self.algo_name, self.info)
        n_states = self.model.reward.shape[0]
        self.v = np.zeros(n_states)
        self.q = bellman_q(self.model, self.v, gamma)
        self.sweeps = 0
        self.residual = float("inf")
        self.finished = False
        # where choices matter: reachable, non-terminal states (walls and the like left out)
        oracle = self.info.oracle
        self.states = oracle.decision_mask if oracle is not None else decision_states(self.model)
        if gamma == 1.0:
            never = np.flatnonzero(self.states & ~can_end(self.model))
            if never.size:
                raise UserError(
                    f"algo={self.algo_name} with algo.gamma=1: no policy ever reaches a terminal "
                    f"state from state {int(never[0])}, so returns are endless sums and the "
                    "problem has no finite optimum; use algo.gamma<1"
                )

    def _check_undiscounted(self, policy: np.ndarray, final: bool) -> None:
        """gamma = 1: refuse a problem without a finite optimum, seen in `policy` (the greedy or
        current one): a loop it never leaves that earns a positive reward per step (returns grow
        without bound), or, at the end (`final`), any loop it never leaves, since a policy that
        never finishes then scores as well as the best one (no reward on its loop is negative).
        """
        gain = loop_gain(self.model, policy, self.states)
        if gain > _GAIN_ATOL:
            raise UserError(
                f"algo={self.algo_name} with algo.gamma=1: a policy that loops forever without "
                f"reaching a terminal state earns {gain:.3g} per step, so returns grow without "
                f"bound and the problem has no finite optimum; {_UNDISCOUNTED_FIX}"
            )
        if final:
            loops = np.flatnonzero(self.states & ~ending_states(self.model, policy))
            if loops.size:
                raise UserError(
                    f"algo={self.algo_name} with algo.gamma=1: its best policy never reaches a "
                    f"terminal state from state {int(loops[0])} and scores as well as one that "
                    "does (no reward on its loop is negative), so the problem has no "
                    f"well-defined optimum under gamma=1; {_UNDISCOUNTED_FIX}"
                )

    def _check_cap(self, what: str) -> None:
        """A planner stopped by total_steps before it converged fails instead of saying done."""
        if self.finished or self.ctx.step + 1 < self.ctx.cfg.total_steps:
            return
        raise UserError(
            f"algo={self.algo_name} did not converge in {self.sweeps:,} {what} (Bellman "
            f"residual {self.residual:.3g}, algo.tol={self.ctx.cfg.algo.tol:g}); raise "
            "total_steps (it caps the sweeps) or algo.tol"
        )

    def _log_residual(self, residual: float) -> None:
        self.sweeps += 1
        self.residual = residual
        # One point per sweep (not averaged over a log window): step = sweep number, which is
        # also the loop's step counter once it adds this iterate's 1.
        self.ctx.recorder.write(tags.BELLMAN_RESIDUAL, residual, self.ctx.step + 1)

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        return greedy(self.q[np.asarray(obs, dtype=np.int64)])

    def action_values(self, obs: np.ndarray) -> np.ndarray | None:
        return self.q[np.asarray(obs, dtype=np.int64)].copy()

    def state_values(self, obs: np.ndarray) -> np.ndarray | None:
        return self.v[np.asarray(obs, dtype=np.int64)].copy()

    def diagnostics(self) -> None:
        rec = self.ctx.recorder
        rec.scalar(tags.SWEEPS, float(self.sweeps))
        record_table(rec, self.q, self.info, images=self.ctx.cfg.logger.images, v=self.v)

    def terminal_view(self) -> str:
        return table_text(self.q, self.info, v=self.v)

    def state_dict(self) -> dict[str, Any]:
        return {
            "v": torch.from_numpy(self.v.copy()),
            "q": torch.from_numpy(self.q.copy()),
            "sweeps": self.sweeps,
            "finished": self.finished,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        v = state["v"].numpy()
        if v.shape != self.v.shape:
            raise UserError(f"checkpoint V has {v.shape[0]} states but this env has {self.v.size}")
        self.v = v.copy()
        self.q = state["q"].numpy().copy()
        self.sweeps = int(state["sweeps"])
        self.finished = bool(state["finished"])


class ValueIteration(_Planner):
    """Synchronous value iteration from V = 0: ``V_{k+1}(s) = max_a [R(s,a) + g C(s,a,.) V_k]``."""

    algo_name = "value_iteration"

    def __init__(self, cfg: ValueIterationConfig, ctx: Context) -> None:
        self.cfg = cfg
        super().__init__(cfg.gamma, ctx)

    def iterate(self) -> int:
        self.v, self.q, residual = value_iteration_sweep(self.model, self.q, self.v, self.cfg.gamma)
        self._log_residual(residual)
        self.finished = residual < self.cfg.tol
        if self.cfg.gamma == 1.0:
            # Diverging values show as a greedy policy looping on a positive reward; looked
            # for at sweeps 1, 2, 4, ..., 256 and every 256th after (it costs more than a sweep)
            # and before stopping either way.
            final = self.finished or self.ctx.step + 1 >= self.ctx.cfg.total_steps
            if final or self.sweeps & (self.sweeps - 1) == 0 or self.sweeps % 256 == 0:
                self._check_undiscounted(greedy_policy(self.q), final=self.finished)
        self._check_cap("sweeps")
        return 1


class PolicyIteration(_Planner):
    """Howard's policy iteration from the all-zeros policy: evaluate pi exactly, then switch
    each state to a strictly better action (by more than TIE_ATOL, so ties cannot cycle)."""

    algo_name = "policy_iteration"

    def __init__(self, cfg: PolicyIterationConfig, ctx: Context) -> None:
        self.cfg = cfg
        super().__init__(cfg.gamma, ctx)
        # Undiscounted, only a policy that ends its episodes has finite values to evaluate:
        # start from one (every later policy is then one too, where the problem is well-posed).
        self.policy = (
            proper_policy(self.model)
            if cfg.gamma == 1.0
            else np.zeros(self.v.shape[0], dtype=np.int64)
        )

    def iterate(self) -> int:
        cfg = self.cfg
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            self.v, self.q, policy, stable = policy_iteration_round(
                self.model, self.policy, cfg.gamma, cfg.tol
            )
        if caught:
            raise UserError(
                f"algo=policy_iteration: with algo.gamma={cfg.gamma} the values of policy "
                f"round {self.sweeps + 1} do not converge (it never reaches a terminal state); "
                "use algo.gamma < 1 or algo=value_iteration"
            )
        # the Bellman optimality error of V_pi: 0 exactly when pi is optimal
        self._log_residual(float(np.max(self.q.max(axis=1) - self.v, initial=0.0)))
        self.policy = policy
        self.finished = stable
        if cfg.gamma == 1.0:
            self._check_undiscounted(policy, final=True)
        self._check_cap("rounds")
        return 1

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        # the policy it evaluated, not argmax Q: under ties (gamma = 1 with no step cost) the
        # lowest action can be one that never ends the episode
        return self.policy[np.asarray(obs, dtype=np.int64)]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "policy": torch.from_numpy(self.policy.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.policy = state["policy"].numpy().copy()
