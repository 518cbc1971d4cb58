"""The token MDP: task rewards by hand, the vector env's episodes, the tree the oracle sweeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain.algos.token_rl import build_tree, demonstrations, tree_size
from rltrain.config.envs import TextEnvConfig
from rltrain.envs.text import TextTask, TextVecEnv
from rltrain.errors import UserError


def test_task_rewards_by_hand() -> None:
    sort = TextTask(TextEnvConfig(task="sort"))
    assert sort.reward((2, 0, 1), (0, 1, 2)) == 1.0
    assert sort.reward((2, 0, 1), (0, 2, 2)) == pytest.approx(2 / 3)
    assert sort.reward((2, 0, 1), (0, 1)) == pytest.approx(2 / 3 - 0.5)  # too short
    reverse = TextTask(TextEnvConfig(task="reverse"))
    assert reverse.reward((3, 1, 0), (0, 1, 3)) == 1.0
    total = TextTask(TextEnvConfig(task="sum"))
    assert total.reward((3, 2, 1), (3, 3)) == 1.0
    assert total.reward((3, 2, 1), (3, 1)) == pytest.approx(1 - 2 / 3)
    assert total.reward((3, 2, 1), ()) == 0.0
    assert sum(total.target((3, 3, 3))) == 9


def test_bad_task_settings_are_one_line_errors() -> None:
    with pytest.raises(UserError, match=r"env.task=nope is not known"):
        TextEnvConfig(task="nope")
    with pytest.raises(UserError, match=r"env.beta=-0.1 must be >= 0"):
        TextEnvConfig(beta=-0.1)
    with pytest.raises(UserError, match=r"env.max_new_tokens>=3"):
        TextTask(TextEnvConfig(task="sort", max_new_tokens=2))


def test_vec_env_ends_a_completion_at_eos_or_the_length_limit() -> None:
    env = TextVecEnv(TextEnvConfig(task="sort", max_new_tokens=3), num_envs=2, seed=0)
    obs = env.reset(seed=1)
    prompts = [tuple(int(t) for t in row[:3]) for row in obs]
    eos = env.vocab.num_digits
    answer = sorted(prompts[0])
    step = env.step(np.array([answer[0], eos]))  # env 1 stops at once: empty completion
    assert step.terminated.tolist() == [False, True]
    assert step.reward[1] == pytest.approx(-0.5)
    env.step(np.array([answer[1], 0]))
    step = env.step(np.array([answer[2], 0]))  # env 0 reaches max_new_tokens
    assert step.terminated[0] and step.reward[0] == 1.0
    returns, lengths = env.pop_episodes()
    assert returns[0] == pytest.approx(-0.5) and lengths.tolist()[:2] == [1, 3]


def test_tree_holds_every_state_with_the_task_reward_at_its_ends() -> None:
    task = TextTask(TextEnvConfig(task="sum", num_digits=3, prompt_len=2, max_new_tokens=3))
    tree, buffers = build_tree(task)
    assert len(buffers) == tree_size(task) == 9 * (1 + 3 + 9)
    root = int(tree.roots[5])
    prompt = tuple(int(t) for t in buffers[root][:2])
    eos = task.vocab.num_digits
    assert tree.end_reward[root, eos] == task.reward(prompt, ())
    kid = int(tree.child[root, 2])
    grandkid = int(tree.child[kid, 1])
    assert buffers[grandkid][3:5].tolist() == [2, 1] and int(tree.depth[grandkid]) == 2
    assert int(tree.child[grandkid, 0]) == -1  # the third token hits the length limit
    assert float(tree.end_reward[grandkid, 0]) == task.reward(prompt, (2, 1, 0))


def test_demonstrations_are_prompt_sep_answer_eos() -> None:
    task = TextTask(TextEnvConfig(task="reverse", max_new_tokens=4, demo_quality=1.0))
    tokens, targets = demonstrations(task, np.random.default_rng(0), 5)
    for row, target in zip(tokens.tolist(), targets.tolist(), strict=True):
        assert row[4:7] == row[:3][::-1] and row[7] == task.vocab.eos
        assert target == [*row[:3][::-1], task.vocab.num_digits]
    assert isinstance(tokens, torch.Tensor)
