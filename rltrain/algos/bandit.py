"""Linear contextual bandits: LinUCB (Li et al. 2010) and linear Thompson sampling (Agrawal &
Goyal 2013), one model per arm ("disjoint" in Li et al.).

Each arm a keeps a ridge regression of its reward on the context x:

    A_a = ridge * I + sum x x^T,   b_a = sum r x,   theta_a = A_a^-1 b_a

and the two algorithms differ only in the score of an arm for a context (`ucb_scores`,
`thompson_scores`):

    ucb        theta_a . x + exploration * sqrt(x^T A_a^-1 x)
    thompson   theta~_a . x,  theta~_a ~ N(theta_a, exploration^2 * A_a^-1)

Both act on the highest score. A_a^-1 is kept directly and updated by Sherman-Morrison
(`ridge_update`), O(d^2) per observation instead of a d x d solve per decision.

The env scores the choice (the recommender's bandit view exposes each arm's click probability
for the current context): `bandit/regret` is the cumulative expected regret
``sum_t max_a mu(x_t, a) - mu(x_t, a_t)``, and the value estimates are graded against the truth
as everywhere else: `values/q_mean` is the predicted reward of the chosen arms and
`values/q_error_vs_optimal` the mean |theta_a . x - mu(x, a)| over every arm of the contexts seen.
Hyperparameters: `BanditConfig` (rltrain/config/algos.py).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.algos.base import Algorithm, Context, check_iteration_fits
from rltrain.config.algos import BanditConfig
from rltrain.envs.vec import envs_restored
from rltrain.errors import UserError


# --- the math (pure) --------------------------------------------------------------------------
def ridge_update(a_inv: np.ndarray, b: np.ndarray, x: np.ndarray, reward: float) -> None:
    """In place, one observation (x, r) of one arm: ``b += r x`` and, by Sherman-Morrison,
    ``(A + x x^T)^-1 = A^-1 - (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x)`` (A symmetric)."""
    u = a_inv @ x
    a_inv -= np.outer(u, u) / (1.0 + x @ u)
    b += reward * x


def estimates(a_inv: np.ndarray, b: np.ndarray, contexts: np.ndarray) -> np.ndarray:
    """[N, K] predicted rewards ``theta_a . x``, ``theta_a = A_a^-1 b_a`` ([K, d, d], [K, d])."""
    theta = np.einsum("kij,kj->ki", a_inv, b)
    return np.asarray(contexts @ theta.T)


def ucb_scores(
    a_inv: np.ndarray, b: np.ndarray, contexts: np.ndarray, exploration: float
) -> np.ndarray:
    """[N, K] ``theta_a . x + exploration * sqrt(x^T A_a^-1 x)`` (Li et al. 2010, eq. 5)."""
    width = np.sqrt(np.einsum("ni,kij,nj->nk", contexts, a_inv, contexts).clip(min=0.0))
    return estimates(a_inv, b, contexts) + exploration * width


def thompson_scores(
    a_inv: np.ndarray,
    b: np.ndarray,
    contexts: np.ndarray,
    exploration: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """[N, K] ``theta~_a . x`` with ``theta~_a ~ N(A_a^-1 b_a, exploration^2 A_a^-1)``, one draw
    per arm and context (Agrawal & Goyal 2013, algorithm 1, with v = exploration)."""
    n, d = contexts.shape
    theta = np.einsum("kij,kj->ki", a_inv, b)
    # A^-1 = L L^T; theta + v L z has covariance v^2 A^-1. Symmetrised: rounding in the
    # Sherman-Morrison updates leaves A^-1 a hair off symmetric.
    chol = np.linalg.cholesky(0.5 * (a_inv + a_inv.transpose(0, 2, 1)))
    z = rng.standard_normal((n, theta.shape[0], d))
    samples = theta[None] + exploration * np.einsum("kij,nkj->nki", chol, z)
    return np.asarray(np.einsum("nki,ni->nk", samples, contexts))


def argmax_random_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[N] argmax per row, ties broken uniformly (untried arms all score the same at first)."""
    best = scores >= scores.max(axis=1, keepdims=True) - 1e-12
    return np.asarray(np.argmax(best * rng.random(scores.shape), axis=1))


# --- the learner ------------------------------------------------------------------------------
class LinearBandit(Algorithm):
    """One iterate() = one decision in each env (a context each) and the arms' ridge updates."""

    algo_name = "linear_bandit"
    value_tags = (tags.Q_MEAN,)  # the predicted reward of the chosen arm; no V or A

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1) or not (
            isinstance(action_space, gym.spaces.Discrete)
        ):
            raise UserError(
                f"algo={cls.algo_name} needs context vectors and discrete arms (a flat Box "
                "observation, a Discrete action), e.g. env=recommender env.view=bandit"
            )

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        """[N, K] what the algorithm maximises to explore."""
        raise NotImplementedError

    def __init__(self, cfg: BanditConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env = ctx.env
        self.check_env(env.single_observation_space, env.single_action_space)
        check_iteration_fits(ctx, self.algo_name, env.num_envs, "env.num_envs")
        self.dim = int(env.single_observation_space.shape[0])  # type: ignore[index]
        self.n_arms = int(env.single_action_space.n)  # type: ignore[attr-defined]
        self.a_inv = np.tile(np.eye(self.dim) / cfg.ridge, (self.n_arms, 1, 1))
        self.b = np.zeros((self.n_arms, self.dim))
        self.pulls = np.zeros(self.n_arms, dtype=np.int64)
        self.regret = 0.0  # cumulative expected regret; nan when the env cannot score arms
        self.obs = np.asarray(env.reset(seed=ctx.cfg.seed), dtype=np.float64)
        # log window: predicted reward of the chosen arms, |estimate - truth| over all arms
        self._window = np.zeros(3)  # [sum q, sum |error|, decisions]

    def _arm_means(self) -> np.ndarray | None:
        """[N, K] each arm's expected reward in the current contexts, if the env can say."""
        envs = [getattr(e, "unwrapped", e) for e in getattr(self.ctx.env, "unwrapped_envs", [])]
        if len(envs) != self.ctx.env.num_envs or not all(hasattr(e, "arm_means") for e in envs):
            return None
        return np.stack([e.arm_means() for e in envs])

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        contexts = np.asarray(obs, dtype=np.float64)
        if deterministic:
            return argmax_random_ties(estimates(self.a_inv, self.b, contexts), self.ctx.rng)
        return argmax_random_ties(self.scores(contexts), self.ctx.rng)

    def iterate(self) -> int:
        contexts = self.obs
        actions = argmax_random_ties(self.scores(contexts), self.ctx.rng)
        means = self._arm_means()
        predicted = estimates(self.a_inv, self.b, contexts)
        step = self.ctx.env.step(actions)
        rows = np.arange(actions.shape[0])
        if means is not None:
            self.regret += float((means.max(axis=1) - means[rows, actions]).sum())
            self._window[1] += float(np.abs(predicted - means).mean(axis=1).sum())
        else:
            self.regret = float("nan")
        self._window[0] += float(predicted[rows, actions].sum())
        self._window[2] += actions.shape[0]
        for x, a, r in zip(contexts, actions, step.reward.astype(np.float64), strict=True):
            ridge_update(self.a_inv[a], self.b[a], x, float(r))
        np.add.at(self.pulls, actions, 1)
        # one-step episodes: every env was reset, obs holds the next users' contexts
        self.obs = np.asarray(step.obs, dtype=np.float64)
        return int(actions.shape[0])

    def diagnostics(self) -> None:
        rec = self.ctx.recorder
        if np.isfinite(self.regret):
            rec.scalar(tags.BANDIT_REGRET, self.regret)
        q_sum, error_sum, n = self._window
        if n:
            rec.scalar(tags.Q_MEAN, q_sum / n)
            if np.isfinite(self.regret):
                rec.scalar(tags.Q_ERROR_VS_OPTIMAL, error_sum / n)
            self._window[:] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "a_inv": torch.from_numpy(self.a_inv.copy()),
            "b": torch.from_numpy(self.b.copy()),
            "pulls": torch.from_numpy(self.pulls.copy()),
            "regret": self.regret,
            "obs": torch.from_numpy(self.obs.copy()),
            "window": self._window.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        a_inv = state["a_inv"].numpy()
        if a_inv.shape != self.a_inv.shape:
            raise UserError(
                f"checkpoint has {a_inv.shape[0]} arms of {a_inv.shape[1]} features but this "
                f"env has {self.n_arms} of {self.dim}"
            )
        self.a_inv[...] = a_inv
        self.b[...] = state["b"].numpy()
        self.pulls[...] = state["pulls"].numpy()
        self.regret = float(state["regret"])
        if envs_restored(self.ctx.env):  # else the env was freshly reset: keep its contexts
            self.obs = state["obs"].numpy().astype(np.float64)
        self._window[:] = np.asarray(state["window"], dtype=np.float64)


class LinUCB(LinearBandit):
    algo_name = "ucb"

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        return ucb_scores(self.a_inv, self.b, contexts, self.cfg.exploration)


class LinearThompson(LinearBandit):
    algo_name = "thompson"

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        return thompson_scores(self.a_inv, self.b, contexts, self.cfg.exploration, self.ctx.rng)
