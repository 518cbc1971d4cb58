"""Tabular TD control: Q-learning, SARSA and expected SARSA (Sutton & Barto 2018, ch. 6).

The three algorithms are the same loop and differ only in the TD target of the update
``Q(s, a) <- Q(s, a) + lr * (target - Q(s, a))`` (lr: the step size, Sutton & Barto's alpha;
g = gamma, 0 after a termination):

    Q-learning      target = r + g * max_a' Q(s', a')                 (Watkins 1989)
    SARSA           target = r + g * Q(s', a'),  a' the action taken next in s'   (Rummery &
                                                                        Niranjan 1994)
    expected SARSA  target = r + g * sum_a' pi(a'|s') Q(s', a'), pi the epsilon-greedy
                    policy itself                                       (van Seijen et al. 2009)

Everything else is shared: the epsilon-greedy behaviour with a schedule, the step size (constant,
``lr / N(s, a)^omega`` per state-action pair, or decaying linearly), optimistic initial values,
a uniform first action per episode (for exploring starts), and, when the env
exposes its model, the exact optimum Q* from value iteration as an oracle for the diagnostics.

Read top to bottom: schedules, policies and targets (pure functions), the table update, then the
learner `TabularTD` and its three subclasses, each of which supplies its target (`td_targets`).
Hyperparameters: `TDConfig` (rltrain/config/algos.py). The oracle, the table diagnostics and the
terminal view are in ``rltrain.algos.oracle``, shared with the planners.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain import tags
from rltrain.algos.base import Algorithm, Context, check_iteration_fits
from rltrain.algos.oracle import check_discrete, greedy, record_table, table_info, table_text
from rltrain.blocks.schedules import epsilon_at, linear
from rltrain.config.algos import TDConfig
from rltrain.envs.vec import Transition, envs_restored
from rltrain.errors import UserError


# --- schedules (pure) -------------------------------------------------------------------------
def lr_at(progress: float, lr: float, end: float, schedule: str) -> float:
    """Base step size after `progress` (in [0, 1]) of the budget: ``lr + progress * (end - lr)``
    for the linear schedule, ``lr`` for the others (visits divides it per pair)."""
    return linear(lr, end, progress) if schedule == "linear" else lr


def step_sizes(alpha: float, visits: np.ndarray, schedule: str, omega: float) -> np.ndarray:
    """Step size per updated pair: ``alpha / N^omega`` (visits, N >= 1), else ``alpha`` (constant,
    and linear, whose caller passes the decayed `lr_at`)."""
    if schedule == "visits":
        return alpha / np.power(visits, omega)
    return np.full(visits.shape, alpha)


# --- policies (pure) --------------------------------------------------------------------------
def epsilon_greedy_probs(q_rows: np.ndarray, epsilon: float) -> np.ndarray:
    """[N, A] probabilities of the epsilon-greedy policy over rows of Q.

    ``pi(a|s) = eps / A + (1 - eps) * [a in argmax Q(s)] / |argmax Q(s)|``: the greedy mass is
    split evenly over tied actions, which is what `epsilon_greedy` samples.
    """
    n_actions = q_rows.shape[-1]
    best = q_rows == q_rows.max(axis=-1, keepdims=True)
    return epsilon / n_actions + (1.0 - epsilon) * best / best.sum(axis=-1, keepdims=True)


def epsilon_greedy(q_rows: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Sample from `epsilon_greedy_probs`: greedy with random tie-breaking, else uniform.

    Random tie-breaking matters while learning: with lowest-index ties every untried state
    would first try action 0, which biases exploration (Sutton & Barto break ties randomly).
    """
    n, n_actions = q_rows.shape
    # One draw per step (the per-call overhead dominates at these sizes): columns :A rank the
    # actions (the argmax of iid uniforms is a uniform action, over the tied ones a uniform
    # tied action); column A decides whether to explore.
    u = rng.random((n, n_actions + 1))
    scores = u[:, :n_actions]
    best = q_rows == q_rows.max(axis=1, keepdims=True)
    explore = u[:, n_actions] < epsilon
    return np.argmax(np.where(explore[:, None], scores, best * scores), axis=1)


# --- TD targets (pure): the only place where the three algorithms differ --------------------
def q_learning_target(reward: np.ndarray, discount: np.ndarray, q_next: np.ndarray) -> np.ndarray:
    """``r + discount * max_a' Q(s', a')``; discount = gamma, or 0 where the episode terminated."""
    return reward + discount * q_next.max(axis=1)


def sarsa_target(
    reward: np.ndarray, discount: np.ndarray, q_next: np.ndarray, next_actions: np.ndarray
) -> np.ndarray:
    """``r + discount * Q(s', a')`` with a' the action the behaviour policy takes in s'."""
    return reward + discount * q_next[np.arange(q_next.shape[0]), next_actions]


def expected_sarsa_target(
    reward: np.ndarray, discount: np.ndarray, q_next: np.ndarray, epsilon: float
) -> np.ndarray:
    """``r + discount * sum_a' pi(a'|s') Q(s', a')``, pi epsilon-greedy (`epsilon_greedy_probs`)."""
    return reward + discount * (epsilon_greedy_probs(q_next, epsilon) * q_next).sum(axis=1)


def td_update(
    q: np.ndarray,
    visits: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    targets: np.ndarray,
    alpha: float,
    schedule: str,
    omega: float,
) -> tuple[np.ndarray, np.ndarray]:
    """In place: ``Q(s, a) += beta * (mean target of the batch's (s, a) - Q(s, a))``.

    `visits` ([S, A]) gains one per transition. A pair hit once gets the plain update, beta =
    alpha_sa. When k envs of a batch hit the same (s, a), their targets are averaged and
    ``beta = 1 - (1 - alpha_sa)^k``, the weight that k sequential updates with step alpha_sa
    toward that mean target would move by (alpha_sa at the first of the k visits): neither the
    last write silently wins nor does a crowded pair learn k times slower. Returns (TD errors,
    step sizes of the updated pairs), for logging.
    """
    n_actions = q.shape[1]
    flat_q, flat_visits = q.reshape(-1), visits.reshape(-1)  # views of the C-contiguous tables
    flat = states * n_actions + actions
    deltas = targets - flat_q[flat]
    if flat.shape[0] == 1:
        flat_visits[flat] += 1
        lr = step_sizes(alpha, flat_visits[flat], schedule, omega)
        flat_q[flat] += lr * deltas
        return deltas, lr
    pairs, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    mean_delta = np.bincount(inverse, weights=deltas) / counts
    lr = step_sizes(alpha, flat_visits[pairs] + 1, schedule, omega)
    flat_visits[pairs] += counts
    beta = 1.0 - np.power(1.0 - lr, counts)
    flat_q[pairs] += beta * mean_delta
    return deltas, beta


# --- the learner ------------------------------------------------------------------------------
class TabularTD(Algorithm):
    """The TD learner on N >= 1 vectorized envs; a subclass supplies the target (`td_targets`).

    One iterate() = one step of every env and one TD update per transition.
    """

    algo_name = "tabular_td"

    @classmethod
    def check_env(cls, obs_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        check_discrete(cls.algo_name, obs_space, action_space)

    def td_targets(
        self, step: Transition, q_next: np.ndarray, next_actions: np.ndarray, epsilon: float
    ) -> np.ndarray:
        """The TD target of each env's transition, with q_next = Q(s', .) of the true successor
        and next_actions the actions chosen in the next states."""
        raise NotImplementedError

    def __init__(self, cfg: TDConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        env = ctx.env
        obs_space, action_space = env.single_observation_space, env.single_action_space
        check_discrete(self.algo_name, obs_space, action_space)
        assert isinstance(obs_space, gym.spaces.Discrete)
        assert isinstance(action_space, gym.spaces.Discrete)
        self.num_envs = env.num_envs
        check_iteration_fits(ctx, self.algo_name, self.num_envs, "env.num_envs")
        self.n_states, self.n_actions = int(obs_space.n), int(action_space.n)
        self.info = table_info(ctx.cfg.env, cfg.gamma)

        # float64 tables, C-contiguous so td_update's flat views alias them.
        self.q = np.full((self.n_states, self.n_actions), float(cfg.initial_q))
        if self.info.model is not None:
            # V = Q = 0 in terminal states by definition; nothing ever bootstraps from them
            # (termination cuts the target), so this only keeps V maps and means honest.
            self.q[self.info.model.terminal_states] = 0.0
        self.visits = np.zeros((self.n_states, self.n_actions), dtype=np.int64)
        self.updates = 0  # TD updates so far (transitions)

        self.obs = env.reset(seed=ctx.cfg.seed).astype(np.int64)
        self.actions = self._first_actions(self.obs)
        # Log-window accumulators (written at diagnostics(), not per step).
        self._abs_td_sum = 0.0
        self._lr_sum = 0.0
        self._window = 0

    @property
    def epsilon(self) -> float:
        c = self.cfg
        return epsilon_at(
            self.ctx.progress, c.epsilon_start, c.epsilon_end, c.epsilon_fraction,
            c.epsilon_schedule,
        )

    def _first_actions(self, obs: np.ndarray) -> np.ndarray:
        """Actions in the first states of new episodes: uniform with random_first_action."""
        if self.cfg.random_first_action:
            return np.asarray(self.ctx.rng.integers(self.n_actions, size=obs.shape[0]))
        return epsilon_greedy(self.q[obs], self.epsilon, self.ctx.rng)

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        rows = self.q[np.asarray(obs, dtype=np.int64)]
        return greedy(rows) if deterministic else epsilon_greedy(rows, self.epsilon, self.ctx.rng)

    def action_values(self, obs: np.ndarray) -> np.ndarray | None:
        return self.q[np.asarray(obs, dtype=np.int64)].copy()

    def iterate(self) -> int:
        cfg, rng = self.cfg, self.ctx.rng
        eps = self.epsilon
        states, actions = self.obs, self.actions
        step = self.ctx.env.step(actions)
        next_obs = step.obs.astype(np.int64)  # where an episode ended: the reset state
        final_obs = step.final_obs.astype(np.int64)  # the true successor s'
        # The actions taken next are chosen before the update, as in S&B's SARSA (for
        # Q-learning this reads Q one update earlier, which is immaterial).
        next_actions = epsilon_greedy(self.q[next_obs], eps, rng)
        if cfg.random_first_action:
            restarted = np.flatnonzero(step.terminated | step.truncated)
            if restarted.size:
                next_actions[restarted] = rng.integers(self.n_actions, size=restarted.size)

        targets = self.td_targets(step, self.q[final_obs], next_actions, eps)
        deltas, lr = td_update(
            self.q, self.visits, states, actions, targets,
            lr_at(self.ctx.progress, cfg.lr, cfg.lr_end, cfg.lr_schedule),
            cfg.lr_schedule, cfg.lr_omega,
        )
        self.updates += self.num_envs
        self._abs_td_sum += float(np.abs(deltas).sum())
        self._lr_sum += float(lr.mean()) * self.num_envs
        self._window += self.num_envs
        self.obs, self.actions = next_obs, next_actions
        return self.num_envs

    def diagnostics(self) -> None:
        rec = self.ctx.recorder
        rec.scalar(tags.EPSILON, self.epsilon)
        if self._window:
            rec.scalar(tags.LEARNING_RATE, self._lr_sum / self._window)
            rec.scalar(tags.TD_ERROR, self._abs_td_sum / self._window)
            self._abs_td_sum = self._lr_sum = 0.0
            self._window = 0
        record_table(rec, self.q, self.info, images=self.ctx.cfg.logger.images)

    def terminal_view(self) -> str:
        return table_text(self.q, self.info)

    def state_dict(self) -> dict[str, Any]:
        return {
            "q": torch.from_numpy(self.q.copy()),
            "visits": torch.from_numpy(self.visits.copy()),
            "updates": self.updates,
            # the states the envs are in and the actions already chosen for them: with the
            # envs' own state (saved by the loop) a resumed run continues the episodes exactly
            "obs": torch.from_numpy(self.obs.copy()),
            "actions": torch.from_numpy(np.asarray(self.actions, dtype=np.int64)),
            "window": [self._abs_td_sum, self._lr_sum, self._window],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        q = state["q"].numpy()
        if q.shape != self.q.shape:
            raise UserError(
                f"checkpoint Q table is {tuple(q.shape)} but this env needs {self.q.shape}"
            )
        # In place: the flat views used by td_update must keep aliasing the tables.
        self.q[...] = q
        self.visits[...] = state["visits"].numpy()
        self.updates = int(state["updates"])
        if "obs" in state and envs_restored(self.ctx.env):
            self.obs = state["obs"].numpy().astype(np.int64)
            self.actions = state["actions"].numpy().astype(np.int64)
            self._abs_td_sum, self._lr_sum = (float(x) for x in state["window"][:2])
            self._window = int(state["window"][2])
        else:
            # The epsilon schedule is a function of the loop's step counter, which the loop
            # restores; the env is freshly reset, so choose its first actions again.
            self.actions = self._first_actions(self.obs)


def discounts(gamma: float, step: Transition) -> np.ndarray:
    """gamma, or 0 where the episode terminated: a termination cuts the bootstrap, a time-limit
    truncation keeps it."""
    return gamma * ~step.terminated


class QLearning(TabularTD):
    algo_name = "q_learning"

    def td_targets(
        self, step: Transition, q_next: np.ndarray, next_actions: np.ndarray, epsilon: float
    ) -> np.ndarray:
        reward = step.reward.astype(np.float64)
        return q_learning_target(reward, discounts(self.cfg.gamma, step), q_next)


class Sarsa(TabularTD):
    algo_name = "sarsa"

    def td_targets(
        self, step: Transition, q_next: np.ndarray, next_actions: np.ndarray, epsilon: float
    ) -> np.ndarray:
        boot_actions = next_actions
        cut = np.flatnonzero(step.truncated & ~step.terminated)
        if cut.size:
            # a' in the final state of a truncated episode is never taken (the env resets), so
            # sample it from the same behaviour policy.
            boot_actions = next_actions.copy()
            boot_actions[cut] = epsilon_greedy(q_next[cut], epsilon, self.ctx.rng)
        reward = step.reward.astype(np.float64)
        return sarsa_target(reward, discounts(self.cfg.gamma, step), q_next, boot_actions)


class ExpectedSarsa(TabularTD):
    algo_name = "expected_sarsa"

    def td_targets(
        self, step: Transition, q_next: np.ndarray, next_actions: np.ndarray, epsilon: float
    ) -> np.ndarray:
        reward = step.reward.astype(np.float64)
        return expected_sarsa_target(reward, discounts(self.cfg.gamma, step), q_next, epsilon)
