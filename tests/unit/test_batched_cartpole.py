from __future__ import annotations

import gymnasium as gym
import numpy as np

from rltrain.envs.batched_cartpole import BatchedCartPole


def test_matches_gymnasium_cartpole_step_by_step() -> None:
    """Same states and actions in, same observations, rewards and flags out, to float32 bits."""
    batched = BatchedCartPole(num_envs=3)
    batched.reset(seed=0)
    references = [gym.make("CartPole-v1") for _ in range(3)]
    for env in references:
        env.reset(seed=0)
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(2000):
        for i, env in enumerate(references):
            env.unwrapped.state = batched.state[i].copy()
            env.unwrapped.steps_beyond_terminated = None
            env._elapsed_steps = int(batched.steps[i])  # the TimeLimit wrapper's counter
        actions = rng.integers(0, 2, size=3)
        step = batched.step(actions)
        for i, env in enumerate(references):
            obs, reward, terminated, truncated, _ = env.step(int(actions[i]))
            np.testing.assert_array_equal(step.final_obs[i], obs)
            assert step.reward[i] == reward
            assert bool(step.terminated[i]) == terminated
            assert bool(step.truncated[i]) == truncated
            ends += terminated or truncated
    assert ends > 50  # the comparison crossed many episode ends


def test_autoreset_same_step_and_episode_stats() -> None:
    env = BatchedCartPole(num_envs=2, max_episode_steps=5)
    obs = env.reset(seed=3)
    assert obs.shape == (2, 4) and obs.dtype == np.float32
    assert np.all(np.abs(obs) <= 0.05)
    for _ in range(5):
        step = env.step(np.zeros(2, dtype=np.int64))
    # The 5th step truncates both (a 5-step limit is too short to fall): obs is the reset state.
    assert step.truncated.all() and not step.terminated.any()
    assert not np.array_equal(step.obs, step.final_obs)
    assert np.all(np.abs(step.obs) <= 0.05)
    returns, lengths = env.pop_episodes()
    np.testing.assert_array_equal(returns, [5.0, 5.0])
    np.testing.assert_array_equal(lengths, [5, 5])
    assert env.pop_episodes()[0].size == 0


def test_terminates_when_pole_falls() -> None:
    env = BatchedCartPole(num_envs=1)
    env.reset(seed=0)
    lengths = []
    for _ in range(200):
        env.step(np.ones(1, dtype=np.int64))  # always push right: falls within tens of steps
        lengths.extend(env.pop_episodes()[1].tolist())
    assert lengths and all(5 < n < 60 for n in lengths)


def test_a_block_resets_alone_as_a_one_block_env_with_its_seed() -> None:
    """A population member resets its own block (DQN builds that way): the block then holds what
    a one-block env reset with the same seed holds, and the other blocks are untouched."""
    envs = BatchedCartPole(6, blocks=3)
    envs.reset(seed=[4, 5, 6])
    envs.step(np.zeros(6, dtype=np.int64))
    before = envs.state.copy()
    obs = envs.block(1).reset(seed=9)
    alone = BatchedCartPole(2)
    np.testing.assert_array_equal(obs, alone.reset(seed=9))
    np.testing.assert_array_equal(envs.state[2:4], alone.state)
    assert (envs.steps[2:4] == 0).all() and (envs.steps[[0, 1, 4, 5]] == 1).all()
    np.testing.assert_array_equal(envs.state[[0, 1, 4, 5]], before[[0, 1, 4, 5]])
    # and it goes on drawing from that seed's stream: the next resets match too
    assert envs.block(1).state_dict()["rng"] == alone.state_dict()["rng"]
