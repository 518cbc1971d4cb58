"""GymVecEnv: SAME_STEP autoreset semantics, episode statistics, terminated vs truncated.

A tiny deterministic env whose observation is its own step counter makes every expected value
computable by hand: after t steps the observation is [offset + t], the reset observation is
[offset], and the reward of the step taken at counter t with action a is 1 + a + t / 2.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rltrain.envs.vec import GymVecEnv, Transition

SAME_STEP = gym.vector.AutoresetMode.SAME_STEP


class CounterEnv(gym.Env[np.ndarray, np.int64]):
    """Observation [offset + t]; terminates after `terminate_after` steps (None: never)."""

    def __init__(self, offset: float, terminate_after: int | None) -> None:
        self.observation_space = gym.spaces.Box(-1e6, 1e6, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.offset, self.terminate_after, self.t = offset, terminate_after, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.offset + self.t], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward = 1.0 + float(action) + self.t / 2
        self.t += 1
        terminated = self.terminate_after is not None and self.t >= self.terminate_after
        return self._obs(), reward, terminated, False, {}


# (offset, terminate_after, time limit): env 0 terminates after 3 steps; env 1 is cut by a
# 5-step time limit; env 2 terminates exactly when its 4-step time limit hits (both flags).
SPECS = [(100.0, 3, None), (200.0, None, 5), (300.0, 4, 4)]


def make_env(specs: list[tuple[float, int | None, int | None]] = SPECS, **kwargs: Any) -> GymVecEnv:
    def thunk(offset: float, end: int | None, limit: int | None) -> Any:
        def make() -> gym.Env[Any, Any]:
            env: gym.Env[Any, Any] = CounterEnv(offset, end)
            if limit is not None:
                env = gym.wrappers.TimeLimit(env, max_episode_steps=limit)
            return env

        return make

    vector = gym.vector.SyncVectorEnv([thunk(*spec) for spec in specs], autoreset_mode=SAME_STEP)
    return GymVecEnv(vector, **kwargs)


def rollout(
    env: GymVecEnv, steps: int, seed: int = 0
) -> tuple[np.ndarray, list[Transition], np.ndarray]:
    rng = np.random.default_rng(seed)
    first = env.reset(seed=seed)
    actions = rng.integers(0, 3, size=(steps, env.num_envs))
    return first, [env.step(a) for a in actions], actions


def test_same_step_obs_and_final_obs():
    env = make_env()
    first, transitions, _ = rollout(env, 23)
    offsets = np.array([s[0] for s in SPECS])
    np.testing.assert_array_equal(first[:, 0], offsets)
    ends = np.array([min(x for x in (end, limit) if x is not None) for _, end, limit in SPECS])
    t = np.zeros(3, dtype=int)  # hand-kept step counters
    done_steps = 0
    for step in transitions:
        t += 1
        done = t == ends
        # final_obs is always the true successor s' of this step ...
        np.testing.assert_array_equal(step.final_obs[:, 0], offsets + t)
        t[done] = 0
        # ... obs is what to act on next: the reset observation where an episode ended
        np.testing.assert_array_equal(step.obs[:, 0], offsets + t)
        differs = (step.final_obs != step.obs).any(axis=1)
        np.testing.assert_array_equal(differs, done)
        np.testing.assert_array_equal(step.terminated | step.truncated, done)
        done_steps += int(done.any())
        assert step.obs.dtype == np.float32 and step.final_obs.dtype == np.float32
        assert step.reward.dtype == np.float32 and step.terminated.dtype == bool
    assert done_steps >= 10  # the rollout crossed many episode ends


def test_final_obs_is_a_copy_where_episodes_end():
    env = make_env()
    env.reset(seed=0)
    for _ in range(3):
        step = env.step(np.zeros(3, dtype=np.int64))
    # env 0 ended at its 3rd step: writing final_obs must not touch obs
    assert step.terminated[0]
    assert step.final_obs[0, 0] == 103 and step.obs[0, 0] == 100
    assert step.final_obs is not step.obs


def test_terminated_and_truncated_are_kept_apart():
    env = make_env()
    _, transitions, _ = rollout(env, 20)
    term = np.array([s.terminated for s in transitions])
    trunc = np.array([s.truncated for s in transitions])
    steps = np.arange(1, 21)
    # env 0: terminations every 3 steps, never truncated
    np.testing.assert_array_equal(term[:, 0], steps % 3 == 0)
    assert not trunc[:, 0].any()
    # env 1: a time limit every 5 steps is a truncation, never a termination
    np.testing.assert_array_equal(trunc[:, 1], steps % 5 == 0)
    assert not term[:, 1].any()
    # env 2: the MDP ends exactly at the time limit: both flags, as gymnasium reports them
    np.testing.assert_array_equal(term[:, 2], steps % 4 == 0)
    np.testing.assert_array_equal(trunc[:, 2], steps % 4 == 0)


def test_pop_episodes_matches_hand_summed_rewards():
    env = make_env()
    _, transitions, actions = rollout(env, 31, seed=3)
    ends = [3, 5, 4]
    expected_returns, expected_lengths = [], []
    running, t = np.zeros(3), np.zeros(3, dtype=int)
    for step_actions in actions:
        for i in range(3):  # by hand, one env at a time
            running[i] += 1.0 + step_actions[i] + t[i] / 2
            t[i] += 1
        for i in range(3):
            if t[i] == ends[i]:
                expected_returns.append(running[i])
                expected_lengths.append(t[i])
                running[i], t[i] = 0.0, 0
    # the rewards the env reported agree with the hand computation too
    rewards = np.array([s.reward for s in transitions])
    hand = 1.0 + actions + np.array([[k % e for e in ends] for k in range(31)]) / 2
    np.testing.assert_allclose(rewards, hand)

    returns, lengths = env.pop_episodes()
    np.testing.assert_allclose(returns, expected_returns)
    np.testing.assert_array_equal(lengths, expected_lengths)
    assert returns.dtype == np.float64 and lengths.dtype == np.int64
    # popped once: the next call starts empty
    again_returns, again_lengths = env.pop_episodes()
    assert again_returns.shape == (0,) and again_lengths.shape == (0,)


def test_pop_episodes_between_steps_loses_nothing():
    env = make_env()
    env.reset(seed=0)
    popped_returns, popped_lengths = [], []
    for _ in range(30):
        env.step(np.ones(3, dtype=np.int64))
        returns, lengths = env.pop_episodes()
        popped_returns.extend(returns.tolist())
        popped_lengths.extend(lengths.tolist())
    # 30 steps: env 0 ends 10 episodes of 3 steps, env 1 six of 5, env 2 seven of 4
    assert sorted(popped_lengths) == sorted([3] * 10 + [5] * 6 + [4] * 7)
    # with action 1 an episode of n steps returns sum_{t<n} (2 + t/2) = 2n + n(n-1)/4
    per_length = {n: 2 * n + n * (n - 1) / 4 for n in (3, 4, 5)}
    assert popped_returns == pytest.approx([per_length[n] for n in popped_lengths])


def test_reset_clears_running_episodes():
    env = make_env()
    env.reset(seed=0)
    env.step(np.full(3, 2))
    env.step(np.full(3, 2))
    env.reset(seed=1)  # the two steps so far belong to no finished episode
    for _ in range(3):
        env.step(np.zeros(3, dtype=np.int64))
    returns, lengths = env.pop_episodes()
    assert lengths.tolist() == [3] and returns.tolist() == [1.0 + 1.5 + 2.0]


def test_episode_statistics_from_the_inner_wrapper():
    """episode_info=True reads RecordEpisodeStatistics (raw scores) instead of summing the
    training rewards: here the training reward is scaled by 10, the raw score is not."""

    def make() -> gym.Env[Any, Any]:
        env: gym.Env[Any, Any] = gym.wrappers.RecordEpisodeStatistics(CounterEnv(0.0, 3))
        return gym.wrappers.TransformReward(env, lambda r: 10.0 * float(r))

    vector = gym.vector.SyncVectorEnv([make, make], autoreset_mode=SAME_STEP)
    env = GymVecEnv(vector, episode_info=True)
    env.reset(seed=0)
    rewards = sum(env.step(np.array([0, 2])).reward for _ in range(3))
    np.testing.assert_allclose(rewards, [10 * (3 + 1.5), 10 * (9 + 1.5)])
    returns, lengths = env.pop_episodes()
    np.testing.assert_allclose(returns, [3 + 1.5, 9 + 1.5])
    np.testing.assert_array_equal(lengths, [3, 3])


def test_next_step_autoreset_is_refused():
    vector = gym.vector.SyncVectorEnv(
        [lambda: CounterEnv(0.0, 2)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
    )
    with pytest.raises(ValueError, match="SAME_STEP"):
        GymVecEnv(vector)
    vector.close()


def test_cartpole_from_the_factory_truncates_at_its_time_limit():
    from rltrain.envs.factory import GymEnvConfig, make_vec_env

    cfg = GymEnvConfig(name="gym", id="CartPole-v1", max_episode_steps=5)
    env = make_vec_env(cfg, num_envs=2, seed=0, training=True)
    env.reset(seed=0)
    for _ in range(5):
        # five pushes in one direction cannot tip the pole past 12 degrees from near-upright
        step = env.step(np.array([0, 1]))
    assert step.truncated.all() and not step.terminated.any()
    assert (step.final_obs != step.obs).any(axis=1).all()
    returns, lengths = env.pop_episodes()
    np.testing.assert_array_equal(lengths, [5, 5])
    np.testing.assert_allclose(returns, [5.0, 5.0])
    env.close()
