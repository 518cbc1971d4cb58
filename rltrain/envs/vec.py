"""The one vector-env interface every algorithm talks to.

Gymnasium 1.x vector envs autoreset in NEXT_STEP mode by default: the step after a done returns
the reset observation with a meaningless reward. We use SAME_STEP instead, so every `step()` is a
real transition and the true successor of a finished episode comes back as `final_obs`; algorithms
then never have to mask "reset steps", and a truncation can bootstrap from V(final_obs).

A backend that steps thousands of envs as tensors (or ale-py's native vector env) only has to
implement `VecEnv`: `reset`, `step -> Transition`, `pop_episodes`, `state_dict` /
`load_state_dict` (None when its episodes cannot be saved), `close`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from rltrain.errors import NonFiniteError


class Transition(NamedTuple):
    """One step of N envs. `obs` is what to act on next; `final_obs` is the true successor s'."""

    obs: np.ndarray  # [N, ...] next observation to act on (the reset observation where done)
    reward: np.ndarray  # [N] float32, the training reward (clipped for Atari in training mode)
    terminated: np.ndarray  # [N] bool: the MDP ended; do not bootstrap
    truncated: np.ndarray  # [N] bool: cut by a time limit; bootstrap from V(final_obs)
    final_obs: np.ndarray  # [N, ...] s' of this step (equals obs where the episode goes on)


Episodes = tuple[np.ndarray, np.ndarray]  # (returns [K] float64, lengths [K] int64)


class VecEnv(Protocol):
    num_envs: int
    single_observation_space: gym.Space[Any]
    single_action_space: gym.Space[Any]

    def reset(self, seed: int | None = None) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> Transition: ...

    def pop_episodes(self) -> Episodes:
        """Returns and lengths of whole episodes that ended since the last call (raw scores)."""
        ...

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint needs to continue the episodes in flight exactly; None when they
        cannot be saved (sub-envs in other processes, the native Atari env): a resumed run then
        starts fresh episodes."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def check_finite_step(reward: np.ndarray, obs: np.ndarray) -> None:
    """Refuse a NaN/inf reward or float observation where it enters, before it reaches a value
    estimate or a checkpoint (one vectorized test per step; integer observations cannot be)."""
    bad_obs = obs.dtype.kind == "f" and not np.isfinite(obs).all()
    if bad_obs or not np.isfinite(reward).all():
        what = "observation" if bad_obs else "reward"
        raise NonFiniteError(
            f"the env returned a non-finite {what} ({reward.tolist()[:4] if not bad_obs else ''}"
            "...); check the env's settings (rewards, scales) or its code"
        )


def envs_restored(env: VecEnv) -> bool:
    """Whether a checkpoint restores `env`'s episodes in flight (the loop loads its state), so the
    observations an algorithm saved are still the ones to act on."""
    return env.state_dict() is not None


_PLAIN = (bool, int, float, str, type(None))


def plain_state(obj: Any) -> dict[str, Any]:
    """The numeric attributes of an env object (positions, counters, physics state arrays).

    Classic-control and toy-text envs keep their whole state in such attributes, so saving them
    with the env's RNG state is enough to continue an episode exactly — without pickling objects
    (checkpoints load with weights_only=True).
    """
    state: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            state[key] = value.copy()
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            state[key] = value.item()
        elif isinstance(value, _PLAIN):
            state[key] = value
    return state


def restore_plain_state(obj: Any, state: dict[str, Any]) -> None:
    for key, value in state.items():
        if hasattr(value, "numpy"):  # arrays come back from a checkpoint as tensors
            value = value.numpy()
        setattr(obj, key, value.copy() if isinstance(value, np.ndarray) else value)


def single_env_state(env: gym.Env[Any, Any]) -> dict[str, Any]:
    """Every wrapper's and the base env's plain attributes plus the env's RNG state."""
    layers = []
    current: Any = env
    while True:
        layers.append(plain_state(current))
        if not hasattr(current, "env"):
            break
        current = current.env
    rng = env.unwrapped._np_random  # type: ignore[attr-defined]
    return {"layers": layers, "rng": None if rng is None else dict(rng.bit_generator.state)}


def restore_single_env_state(env: gym.Env[Any, Any], state: dict[str, Any]) -> None:
    current: Any = env
    for layer in state["layers"]:
        restore_plain_state(current, layer)
        current = getattr(current, "env", None)
    if state["rng"] is not None:
        env.unwrapped.np_random.bit_generator.state = state["rng"]


class GymVecEnv:
    """Adapter over a gymnasium `VectorEnv` created with `autoreset_mode=SAME_STEP`.

    Episode statistics: by default we sum the rewards ourselves (vectorized, no per-env loop).
    With `episode_info=True` they are read from an inner `RecordEpisodeStatistics` wrapper
    instead, which is how Atari reports raw game scores while training on clipped per-life rewards.
    """

    def __init__(self, env: gym.vector.VectorEnv, episode_info: bool = False) -> None:
        mode = env.metadata.get("autoreset_mode")
        if mode is not None and mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(f"GymVecEnv needs SAME_STEP autoreset, got {mode}")
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.episode_info = episode_info
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._done_returns: list[np.ndarray] = []
        self._done_lengths: list[np.ndarray] = []

    @property
    def unwrapped_envs(self) -> list[gym.Env[Any, Any]]:
        return list(getattr(self.env, "envs", []))

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return np.asarray(obs)

    def step(self, actions: np.ndarray) -> Transition:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        obs = np.asarray(obs)
        reward = np.asarray(reward, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        final_obs = obs
        if done.any():
            final_obs = obs.copy()
            idx = np.flatnonzero(info["_final_obs"])
            final_obs[idx] = np.stack([np.asarray(info["final_obs"][i]) for i in idx])
        check_finite_step(reward, final_obs)
        self._track(reward, done, info)
        return Transition(obs, reward, terminated, truncated, final_obs)

    def _track(self, reward: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> None:
        if self.episode_info:
            final = info.get("final_info", {})
            if "_episode" in final:
                mask = np.asarray(final["_episode"], dtype=bool)
                self._done_returns.append(np.asarray(final["episode"]["r"])[mask])
                self._done_lengths.append(np.asarray(final["episode"]["l"])[mask])
            return
        self._returns += reward
        self._lengths += 1
        if done.any():
            self._done_returns.append(self._returns[done].copy())
            self._done_lengths.append(self._lengths[done].copy())
            self._returns[done] = 0.0
            self._lengths[done] = 0

    def pop_episodes(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._done_returns:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        returns = np.concatenate(self._done_returns).astype(np.float64)
        lengths = np.concatenate(self._done_lengths).astype(np.int64)
        self._done_returns.clear()
        self._done_lengths.clear()
        return returns, lengths

    def state_dict(self) -> dict[str, Any] | None:
        """Sub-env states and the statistics of the episodes in flight, so a resumed run continues
        them exactly; None for async vectors, whose sub-envs live in other processes."""
        envs = getattr(self.env, "envs", None)
        if envs is None:
            return None
        return {
            "returns": self._returns.copy(),
            "lengths": self._lengths.copy(),
            "envs": [single_env_state(e) for e in envs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        envs = getattr(self.env, "envs", None)
        if envs is None or state.get("envs") is None:
            return
        self._returns[:] = np.asarray(state["returns"])
        self._lengths[:] = np.asarray(state["lengths"])
        for env, env_state in zip(envs, state["envs"], strict=True):
            restore_single_env_state(env, env_state)

    def close(self) -> None:
        self.env.close()
