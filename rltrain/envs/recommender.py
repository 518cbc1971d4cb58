"""A simulated recommender: users, a catalogue, fatigue, interest drift and users who leave.

The user model follows the idea of RecSim / SlateQ (Ie et al. 2019): a user has latent interests,
a choice (click) model and a state that the recommendations change. Here:

- a user belongs to a segment ``u``; ``interest[u, c]`` is its interest in category ``c``;
- each category has a fatigue level ``f[c]`` in ``0..max_fatigue``; showing an item of ``c``
  adds one level to ``c`` and removes one from every other category;
- recommending item ``i`` (category ``c``, quality ``q_i``) is clicked with probability
  ``p = interest[u, c] * q_i * (1 - fatigue)^f[c]`` (`click_probability`);
- after a non-click the user leaves (the episode terminates) with probability
  ``min(1, leave_base + leave_rate * m)``, ``m`` the consecutive non-clicks before it
  (`leave_probability`); a click resets ``m``;
- after a click, with probability ``drift`` the user moves to the segment most interested in the
  clicked category (interests drift towards what was consumed).

The reward is 1 per click, so the return is clicks per session. The most clickable category
builds fatigue and drags the user towards a segment; a policy that values the session spreads its
recommendations and steers the drift, which the greedy next-click policy cannot do.

Views: ``tabular`` (Discrete state index, exact model ``P`` in toy-text format, for the TD
learners, the planners and the oracle), ``features`` (a float32 vector: segment one-hot,
fatigue per category, misses; many categories, for DQN and PPO) and ``bandit`` (one-step
episodes: a fresh user per episode whose context is its interest vector ``x``, drawn as the
segment's interests plus ``context_noise`` Gaussian noise, clipped to [0, 1]; item ``i`` is
clicked with ``p = x[c_i] * q_i``, linear in the context, for ucb and thompson).
``baselines()`` returns the clicks per session of the random and greedy policies (and the
optimum, tabular view); on the bandit view greedy (the best arm per context) is the optimum.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Collection
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces

from rltrain.blocks.dp import model_from_P
from rltrain.config.envs import RECOMMENDER_VIEWS, RecommenderConfig
from rltrain.errors import UserError

MAX_TABLE_STATES = 20_000  # above this the tabular view's P table is refused
MAX_SLATES = 10_000  # above this many slates (actions) env.slate_size is refused
BASELINE_SESSIONS = 1_000  # Monte Carlo sessions per baseline on the features view
# the features view's exact optimum is computed when reachable states x actions stay below this
MAX_OPTIMUM_PAIRS = 200_000
DEFAULT_CATEGORIES = {"tabular": 3, "features": 24, "bandit": 8}
ITEMS_PER_CATEGORY = {"tabular": 1, "features": 5, "bandit": 2}
# The population where its keys are null. With 24 categories fatigue costs greedy little, so on
# the features view users leave sooner after a miss and drift harder towards what they click:
# steering the drift is then worth 27% more clicks than the greedy click (docs/recommender.md).
_SMALL = {"n_segments": 3, "interest_max": 0.9, "drift": 0.3, "leave_base": 0.1, "leave_rate": 0.15}
VIEW_DEFAULTS: dict[str, dict[str, float]] = {
    "tabular": _SMALL,
    "bandit": _SMALL,
    "features": {
        "n_segments": 4,
        "interest_max": 1.0,
        "drift": 0.8,
        "leave_base": 0.3,
        "leave_rate": 0.3,
    },
}

Transition = tuple[float, int, float, bool]


def click_probability(interest: float, quality: float, fatigue: float, level: int) -> float:
    """``p = interest * quality * (1 - fatigue)^level``."""
    return float(interest * quality * (1.0 - fatigue) ** level)


def leave_probability(leave_base: float, leave_rate: float, misses: int) -> float:
    """Chance of leaving after a non-click: ``min(1, leave_base + leave_rate * misses)``."""
    return float(min(1.0, leave_base + leave_rate * misses))


def next_fatigue(
    levels: tuple[int, ...], shown: int | Collection[int], max_fatigue: int
) -> tuple[int, ...]:
    """Each shown category gains a level (capped at max_fatigue), every other loses one."""
    shown = {shown} if isinstance(shown, int) else set(shown)
    return tuple(
        min(f + 1, max_fatigue) if c in shown else max(f - 1, 0) for c, f in enumerate(levels)
    )


@dataclasses.dataclass(frozen=True)
class Users:
    """The population's keys with the view's defaults filled in where the config has null."""

    n_segments: int
    interest_max: float
    drift: float
    leave_base: float
    leave_rate: float

    @classmethod
    def of(cls, cfg: RecommenderConfig) -> Users:
        defaults = VIEW_DEFAULTS.get(cfg.view, _SMALL)
        values = {
            key: getattr(cfg, key) if getattr(cfg, key) is not None else default
            for key, default in defaults.items()
        }
        return cls(
            n_segments=int(values["n_segments"]),
            interest_max=float(values["interest_max"]),
            drift=float(values["drift"]),
            leave_base=float(values["leave_base"]),
            leave_rate=float(values["leave_rate"]),
        )


class Catalogue:
    """Interests [segments, categories], item categories and qualities, drawn from one seed."""

    def __init__(
        self, cfg: RecommenderConfig, users: Users, n_categories: int, n_items: int
    ) -> None:
        rng = np.random.default_rng(cfg.catalogue_seed)
        self.interest = rng.uniform(
            cfg.interest_min, users.interest_max, (users.n_segments, n_categories)
        )
        self.category = np.arange(n_items) % n_categories
        self.quality = rng.uniform(cfg.quality_min, 1.0, n_items)
        # where a click on category c drifts the user: the segment most interested in c
        self.drift_to = np.argmax(self.interest, axis=0)


def _check(cfg: RecommenderConfig) -> tuple[Users, int, int]:
    """One-line errors for impossible settings; returns (users, categories, items)."""
    if cfg.view not in RECOMMENDER_VIEWS:
        raise UserError(f"env.view={cfg.view} is not known; use {' or '.join(RECOMMENDER_VIEWS)}")
    users = Users.of(cfg)
    n_categories = (
        cfg.n_categories if cfg.n_categories is not None else DEFAULT_CATEGORIES[cfg.view]
    )
    n_items = (
        cfg.n_items if cfg.n_items is not None else n_categories * ITEMS_PER_CATEGORY[cfg.view]
    )
    if n_items < 1:
        raise UserError(f"env.n_items={n_items}: the catalogue is empty; use env.n_items >= 1")
    for key, value in (("n_segments", users.n_segments), ("n_categories", n_categories)):
        if value < 1:
            raise UserError(f"env.{key}={value} must be at least 1")
    if n_items < n_categories:
        raise UserError(
            f"env.n_items={n_items} is fewer than env.n_categories={n_categories} "
            "(every category needs an item)"
        )
    for key in ("interest_min", "interest_max", "quality_min", "fatigue", "leave_base",
                "leave_rate", "drift", "context_noise"):  # fmt: skip
        value = getattr(users, key, getattr(cfg, key))
        if not 0.0 <= value <= 1.0:
            raise UserError(f"env.{key}={value} is a probability and must be in [0, 1]")
    if cfg.interest_min > users.interest_max:
        raise UserError(
            f"env.interest_min={cfg.interest_min} must be <= env.interest_max={users.interest_max}"
        )
    for key in ("max_fatigue", "max_misses"):
        if getattr(cfg, key) < 0:
            raise UserError(f"env.{key}={getattr(cfg, key)} must be >= 0")
    if cfg.max_steps < 1:
        raise UserError(f"env.max_steps={cfg.max_steps} must be >= 1")
    if not 1 <= cfg.slate_size <= n_items:
        raise UserError(
            f"env.slate_size={cfg.slate_size} must be between 1 and the catalogue's "
            f"env.n_items={n_items}"
        )
    if cfg.slate_size > 1 and cfg.view == "bandit":
        raise UserError("env.view=bandit recommends one item per user; use env.slate_size=1")
    slates = math.comb(n_items, cfg.slate_size)
    if slates > MAX_SLATES:
        raise UserError(
            f"env.slate_size={cfg.slate_size} of env.n_items={n_items} makes {slates:,} "
            f"possible slates, more than an action space of {MAX_SLATES:,}; lower either"
        )
    if cfg.view == "tabular":
        states = table_size(users.n_segments, n_categories, cfg.max_fatigue, cfg.max_misses)
        if states > MAX_TABLE_STATES:
            raise UserError(
                f"env.view=tabular with {users.n_segments} segments, {n_categories} categories, "
                f"max_fatigue={cfg.max_fatigue}, max_misses={cfg.max_misses} has {states:,} "
                f"states, more than a table holds ({MAX_TABLE_STATES:,}); shrink them or use "
                "env.view=features"
            )
    return users, n_categories, n_items


def table_size(n_segments: int, n_categories: int, max_fatigue: int, max_misses: int) -> int:
    """States of the tabular view: segments x fatigue levels^categories x misses, plus 'left'."""
    return n_segments * (max_fatigue + 1) ** n_categories * (max_misses + 1) + 1


@dataclasses.dataclass(frozen=True)
class Reachable:
    """The user states reachable from the start (the first n_starts are the start states, one
    per segment, drawn uniformly) and their one-step model, as flat arrays: outcome k moves
    (state, action) pair[k] = s * n_actions + a to state target[k] with probability prob[k];
    leaving is absorbing with value 0."""

    states: list[tuple[int, tuple[int, ...], int]]
    n_starts: int
    reward: np.ndarray  # [states, actions] expected clicks of one recommendation
    pair: np.ndarray
    target: np.ndarray
    prob: np.ndarray
    horizon: int  # max_steps

    def value(self, policy: np.ndarray | None) -> float:
        """Expected clicks per session from the start, by backward induction over the horizon:
        ``Q_t(s, a) = r(s, a) + sum_s' P(s' | s, a) V_t(s')``, V_0 = 0, and V_{t+1}(s) =
        sum_a pi(a | s) Q_t(s, a) for `policy` [states, actions], max_a Q_t(s, a) for None."""
        n, n_actions = self.reward.shape
        values = np.zeros(n)
        for _ in range(self.horizon):
            weighted = self.prob * values[self.target]
            future = np.bincount(self.pair, weighted, minlength=n * n_actions)
            q = self.reward + future.reshape(n, n_actions)
            values = q.max(axis=1) if policy is None else (policy * q).sum(axis=1)
        return float(values[: self.n_starts].mean())


class RecommenderEnv(gymnasium.Env[Any, int]):
    """See the module docstring. Action = the item to recommend."""

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012
    action_space: spaces.Discrete  # type: ignore[assignment]

    def __init__(
        self, cfg: RecommenderConfig | None = None, render_mode: str | None = None
    ) -> None:
        cfg = cfg or RecommenderConfig()
        self.cfg = cfg
        self.users, self.n_categories, self.n_items = _check(cfg)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(f"recommender render_mode {render_mode!r} is not supported; use ansi")
        self.render_mode = render_mode
        self.catalogue = Catalogue(cfg, self.users, self.n_categories, self.n_items)
        # action a recommends the items slates[a], shown in that order
        self.slates = list(itertools.combinations(range(self.n_items), cfg.slate_size))
        self.slate_index = {slate: a for a, slate in enumerate(self.slates)}
        self.n_actions = len(self.slates)
        self.action_space = spaces.Discrete(self.n_actions)
        self.view = cfg.view
        # the user's state: segment, fatigue per category, consecutive misses
        self.segment = 0
        self.levels = np.zeros(self.n_categories, dtype=np.int64)
        self.misses = 0
        self.left = False
        self._elapsed = 0
        self._baselines: dict[str, float] | None = None
        self._reachable: Reachable | None = None
        self._too_many = False  # more than MAX_OPTIMUM_PAIRS reachable: no exact values
        self.context = np.zeros(self.n_categories)  # bandit view: this episode's user
        if self.view == "bandit":
            self.observation_space = spaces.Box(0.0, 1.0, (self.n_categories,), dtype=np.float32)
        elif self.view == "tabular":
            self._states = list(
                itertools.product(
                    range(self.users.n_segments),
                    itertools.product(range(cfg.max_fatigue + 1), repeat=self.n_categories),
                    range(cfg.max_misses + 1),
                )
            )
            self._index = {s: i for i, s in enumerate(self._states)}
            self.gone = len(self._states)  # the absorbing state after the user left
            self.observation_space = spaces.Discrete(self.gone + 1)
            self.initial_state_distrib = np.zeros(self.gone + 1)
            for u in range(self.users.n_segments):
                start = self._index[(u, (0,) * self.n_categories, 0)]
                self.initial_state_distrib[start] = 1.0 / self.users.n_segments
            self.P = self._build_P()
        else:
            size = self.users.n_segments + self.n_categories + 1
            self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)

    # --- the model -----------------------------------------------------------------------------
    def outcomes(
        self, segment: int, levels: tuple[int, ...], misses: int, action: int
    ) -> list[tuple[float, tuple[int, tuple[int, ...], int] | None, float]]:
        """(probability, next user state or None if the user left, reward) of recommending the
        slate `action` (one item when env.slate_size=1).

        The user reads the slate in order and clicks item j with its own click probability
        p_j if no earlier item was clicked (a cascade: at most one click, with probability
        ``1 - prod_j (1 - p_j)``); every shown category gains a fatigue level."""
        cfg, cat, users = self.cfg, self.catalogue, self.users
        items = self.slates[action]
        nf = next_fatigue(levels, {int(cat.category[i]) for i in items}, cfg.max_fatigue)
        result: list[tuple[float, tuple[int, tuple[int, ...], int] | None, float]] = []
        unclicked = 1.0  # chance that no earlier item of the slate was clicked
        for item in items:
            c = int(cat.category[item])
            p = click_probability(
                cat.interest[segment, c], cat.quality[item], cfg.fatigue, levels[c]
            )
            clicked, unclicked = unclicked * p, unclicked * (1.0 - p)
            drift_to = int(cat.drift_to[c])
            if drift_to != segment:
                result.append((clicked * users.drift, (drift_to, nf, 0), 1.0))
                result.append((clicked * (1.0 - users.drift), (segment, nf, 0), 1.0))
            else:
                result.append((clicked, (segment, nf, 0), 1.0))
        leave = leave_probability(users.leave_base, users.leave_rate, misses)
        result.append((unclicked * leave, None, 0.0))
        result.append(
            (unclicked * (1.0 - leave), (segment, nf, min(misses + 1, cfg.max_misses)), 0.0)
        )
        return [r for r in result if r[0] > 0.0]

    def _build_P(self) -> dict[int, dict[int, list[Transition]]]:
        P: dict[int, dict[int, list[Transition]]] = {}
        for index, (segment, levels, misses) in enumerate(self._states):
            P[index] = {}
            for item in range(self.n_actions):
                row: list[Transition] = []
                for prob, nxt, reward in self.outcomes(segment, levels, misses, item):
                    if nxt is None:
                        row.append((prob, self.gone, reward, True))
                    else:
                        row.append((prob, self._index[nxt], reward, False))
                P[index][item] = row
        P[self.gone] = {a: [(1.0, self.gone, 0.0, True)] for a in range(self.n_actions)}
        return P

    def click_probabilities(self) -> np.ndarray:
        """[items] click probability of each item for the current user (what greedy maximises)."""
        cat, cfg = self.catalogue, self.cfg
        levels = self.levels[cat.category]
        return (
            cat.interest[self.segment, cat.category] * cat.quality * (1.0 - cfg.fatigue) ** levels
        )

    def arm_means(self) -> np.ndarray:
        """[items] bandit view: each item's click probability for this episode's context,
        ``x[c_i] * q_i`` (what the regret is measured against)."""
        cat = self.catalogue
        return np.asarray(self.context[cat.category] * cat.quality)

    def _draw_context(self) -> None:
        noise = self.np_random.normal(0.0, self.cfg.context_noise, self.n_categories)
        self.context = np.clip(self.catalogue.interest[self.segment] + noise, 0.0, 1.0)

    def greedy_slate(self) -> int:
        """The action showing the slate_size most clickable items for the current user: it
        maximises the chance of a click, ``1 - prod (1 - p_j)``, whatever their order."""
        top = np.argsort(-self.click_probabilities(), kind="stable")[: self.cfg.slate_size]
        return self.slate_index[tuple(sorted(int(i) for i in top))]

    # --- gymnasium -----------------------------------------------------------------------------
    def _obs(self) -> Any:
        if self.view == "bandit":
            return self.context.astype(np.float32)
        if self.left and self.view == "tabular":
            return self.gone
        return self.observe(self.segment, tuple(int(f) for f in self.levels), self.misses)

    def observe(self, segment: int, levels: tuple[int, ...], misses: int) -> Any:
        """The observation of a user state: its index (tabular) or, on the features view, the
        segment one-hot, the fatigue per category over max_fatigue and the misses over
        max_misses."""
        if self.view == "tabular":
            return self._index[(segment, levels, misses)]
        cfg = self.cfg
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)  # type: ignore[arg-type,type-var]
        obs[segment] = 1.0
        n = self.users.n_segments
        obs[n : n + self.n_categories] = np.asarray(levels) / max(1, cfg.max_fatigue)
        obs[-1] = misses / max(1, cfg.max_misses)
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.segment = int(self.np_random.integers(self.users.n_segments))
        self.levels = np.zeros(self.n_categories, dtype=np.int64)
        self.misses = 0
        self.left = False
        self._elapsed = 0
        if self.view == "bandit":
            self._draw_context()
        return self._obs(), {}

    def step(self, action: int) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        item = int(action)
        if self.view == "bandit":  # one recommendation per user, clicked or not
            means = self.arm_means()
            click = bool(self.np_random.random() < means[item])
            self.left = True
            return self._obs(), float(click), True, False, {"click": click}
        options = self.outcomes(self.segment, tuple(int(f) for f in self.levels), self.misses, item)
        probs = np.array([o[0] for o in options])
        pick = int(
            np.searchsorted(np.cumsum(probs), self.np_random.random() * probs.sum(), "right")
        )
        _, nxt, reward = options[min(pick, len(options) - 1)]
        if nxt is None:
            self.left = True
        else:
            self.segment, levels, self.misses = nxt
            self.levels = np.asarray(levels, dtype=np.int64)
        self._elapsed += 1
        truncated = not self.left and self._elapsed >= self.cfg.max_steps
        return self._obs(), reward, self.left, truncated, {"click": reward > 0}

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        state = "left" if self.left else f"segment {self.segment}, fatigue {self.levels.tolist()}"
        return f"user: {state}, misses {self.misses}\n"

    # --- baselines -----------------------------------------------------------------------------
    def baselines(self) -> dict[str, float]:
        """Expected clicks per session of the random and greedy next-click policies, and of the
        optimal policy. Tabular: exact, by backward induction over max_steps steps on P;
        features: exact where few user states are reachable (`_reachable_baselines`), else the
        random and greedy means over BASELINE_SESSIONS simulated sessions (a fixed seed)."""
        if self._baselines is None:
            if self.view == "tabular":
                self._baselines = self._exact_baselines()
            elif self.view == "bandit":
                self._baselines = self._bandit_baselines()
            else:  # exact where few user states are reachable, simulated otherwise
                self._baselines = self._reachable_baselines() or {
                    "random": self._simulate(greedy=False),
                    "greedy": self._simulate(greedy=True),
                }
        return dict(self._baselines)

    def reachable(self) -> Reachable | None:
        """The user states reachable from the start and their one-step model (cached), or None
        if states x actions > MAX_OPTIMUM_PAIRS.

        Few are reachable with max_fatigue=1: a category's level is then 1 exactly when it was in
        the last slate, so the fatigue vector is the last slate's categories (features defaults:
        292 of the 4 segments x 25 x 3 misses, though 2^24 fatigue vectors exist)."""
        if self._reachable is not None or self._too_many:
            return self._reachable
        start = (0,) * self.n_categories
        order = [(u, start, 0) for u in range(self.users.n_segments)]
        index = {state: i for i, state in enumerate(order)}
        pair, target, prob = [], [], []  # one entry per (state, action) -> next state outcome
        reward = []
        i = 0
        while i < len(order):
            if len(order) * self.n_actions > MAX_OPTIMUM_PAIRS:
                self._too_many = True
                return None
            segment, levels, misses = order[i]
            for action in range(self.n_actions):
                expected = 0.0
                for p, nxt, r in self.outcomes(segment, levels, misses, action):
                    expected += p * r
                    if nxt is not None:
                        if nxt not in index:
                            index[nxt] = len(order)
                            order.append(nxt)
                        pair.append(i * self.n_actions + action)
                        target.append(index[nxt])
                        prob.append(p)
                reward.append(expected)
            i += 1
        self._reachable = Reachable(
            states=order,
            n_starts=self.users.n_segments,
            reward=np.asarray(reward).reshape(len(order), self.n_actions),
            pair=np.asarray(pair),
            target=np.asarray(target),
            prob=np.asarray(prob),
            horizon=self.cfg.max_steps,
        )
        return self._reachable

    def _reachable_baselines(self) -> dict[str, float] | None:
        """Expected clicks per session of the random, greedy and optimal policies, exact on the
        reachable user states (`reachable`), or None where too many are reachable."""
        model = self.reachable()
        if model is None:
            return None
        n = len(model.states)
        uniform = np.full((n, self.n_actions), 1.0 / self.n_actions)
        greedy = np.zeros((n, self.n_actions))  # the most clickable slate, lowest index on ties
        greedy[np.arange(n), model.reward.argmax(axis=1)] = 1.0
        return {
            "random": model.value(uniform),
            "greedy": model.value(greedy),
            "optimal": model.value(None),
        }

    def exact_return(self, act: Callable[[np.ndarray], np.ndarray]) -> float | None:
        """Exact expected clicks per session of the deterministic policy `act` (a batch of
        observations -> actions), by policy evaluation on the reachable user states; None on
        the bandit view or where too many states are reachable. What eval/return_mean estimates
        from a few sessions, without their noise."""
        model = None if self.view == "bandit" else self.reachable()
        if model is None:
            return None
        obs = np.stack([np.asarray(self.observe(*state)) for state in model.states])
        actions = np.asarray(act(obs)).astype(np.int64).reshape(-1)
        policy = np.zeros((len(model.states), self.n_actions))
        policy[np.arange(len(model.states)), actions] = 1.0
        return model.value(policy)

    def greedy_items(self) -> np.ndarray:
        """[states] the greedy next-click item of every tabular state (lowest index on ties)."""
        model = model_from_P(self.P, self.gone + 1, self.n_actions, self.initial_state_distrib)
        return np.argmax(model.reward, axis=1)

    def _exact_baselines(self) -> dict[str, float]:
        model = model_from_P(self.P, self.gone + 1, self.n_actions, self.initial_state_distrib)
        start = self.initial_state_distrib
        n_states = model.reward.shape[0]
        uniform = np.full((n_states, self.n_actions), 1.0 / self.n_actions)
        greedy = np.zeros((n_states, self.n_actions))
        greedy[np.arange(n_states), np.argmax(model.reward, axis=1)] = 1.0
        values = {"random": np.zeros(n_states), "greedy": np.zeros(n_states)}
        optimal = np.zeros(n_states)
        for _ in range(self.cfg.max_steps):  # V_{t+1} = R_pi + C_pi V_t: t steps to go
            for name, policy in (("random", uniform), ("greedy", greedy)):
                q = model.reward + model.continue_prob @ values[name]
                values[name] = (policy * q).sum(axis=1)
            optimal = (model.reward + model.continue_prob @ optimal).max(axis=1)
        return {
            "random": float(start @ values["random"]),
            "greedy": float(start @ values["greedy"]),
            "optimal": float(start @ optimal),
        }

    def _bandit_baselines(self, users: int = 20_000) -> dict[str, float]:
        """Expected clicks per user of a uniform arm and of the best arm per context, averaged
        over `users` contexts drawn with their own RNG (the click itself is not sampled)."""
        twin = RecommenderEnv(self.cfg)
        twin.reset(seed=12345)
        random = best = 0.0
        for _ in range(users):
            twin.reset()
            means = twin.arm_means()
            random += float(means.mean())
            best += float(means.max())
        return {"random": random / users, "greedy": best / users}

    def _simulate(self, greedy: bool, sessions: int = BASELINE_SESSIONS) -> float:
        """Mean clicks per session over `sessions` simulated sessions with their own RNG."""
        twin = RecommenderEnv(self.cfg)
        rng = np.random.default_rng(12345)
        twin.reset(seed=int(rng.integers(2**31)))
        total = 0.0
        for _ in range(sessions):
            twin.reset()
            while True:
                item = twin.greedy_slate() if greedy else int(rng.integers(self.n_actions))
                _, reward, terminated, truncated, _ = twin.step(item)
                total += float(reward)
                if terminated or truncated:
                    break
        return total / sessions


def make_recommender(cfg: RecommenderConfig, render_mode: str | None = None) -> RecommenderEnv:
    """Build one RecommenderEnv from its config group."""
    return RecommenderEnv(cfg, render_mode=render_mode)
