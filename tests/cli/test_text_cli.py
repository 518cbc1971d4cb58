"""env=text through the installed console script: a tiny PPO and GRPO run log the token-level
values against the exact optimum; user mistakes are one line; an oracle out of reach is one
warning line and the run goes on; `rltrain eval` scores a text run."""

from __future__ import annotations

import re

import pytest

TINY_TEXT = [
    "env=text", "env.pretrain_steps=20", "env.num_envs=8", "total_steps=600",
    "logger.log_interval=200", "eval_episodes=2", "logger.progress=none",
]  # fmt: skip

BAD = {
    "unknown_task": (["env.task=nope"], [r"env\.task=nope", r"sort"]),
    "negative_beta": (["env.beta=-0.5"], [r"env\.beta=-0\.5", r">= 0"]),
    "dqn_on_text": (["algo=dqn"], [r"algo=dqn cannot train on env=text", r"algo=grpo"]),
    "mlp_on_text": (["network=mlp"], [r"network=mlp", r"network=transformer"]),
    "small_group": (["algo=grpo", "algo.group_size=1"], [r"algo\.group_size=1"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_text_input_is_one_line(case, run_cli, workdir, one_error_line):
    args, patterns = BAD[case]
    message = one_error_line(run_cli([*TINY_TEXT, *args], workdir))
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert not list(workdir.rglob("summary.json"))


def test_grpo_outside_text_is_refused(run_cli, workdir, one_error_line):
    message = one_error_line(run_cli(["algo=grpo", "env=cartpole", "total_steps=64"], workdir))
    assert "env=text" in message


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_tiny_text_run_logs_values_against_the_optimum(algo, run_cli, workdir, tb_scalars,
                                                       find_run_dirs):  # fmt: skip
    result = run_cli([f"algo={algo}", *TINY_TEXT], workdir)
    assert result.returncode == 0, result.stderr
    (run,) = find_run_dirs(workdir)
    assert (run / "reference.pt").is_file()
    scalars = tb_scalars(run)
    for tag in ("charts/objective", "charts/objective_optimal", "policy/kl_to_optimal",
                "policy/kl_to_reference", "charts/reward_mean", "values/v_mean",
                "values/q_mean", "values/advantage_mean"):  # fmt: skip
        assert tag in scalars, tag
    optimum = scalars["charts/objective_optimal"][-1][1]
    # no policy beats the optimum; its gap is beta * KL(pi || pi*) >= 0
    assert all(value <= optimum + 1e-6 for _, value in scalars["charts/objective"])
    # only PPO trains a value head to grade; GRPO's would be an untrained head's noise
    for tag in ("values/q_error_vs_optimal", "values/v_error_vs_optimal"):
        assert (tag in scalars) == (algo == "ppo"), tag
    # the sample completions: a picture of per-token V and A, and the same rows as text
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    # Q, V and A per token (PPO: A + V, V, GAE) or per completion (GRPO: R, group mean, A)
    for tag in ("values/q", "values/v", "values/advantage"):
        assert tag in events.Tags()["histograms"], (tag, events.Tags()["histograms"])
    (picture, *_) = events.Images("values/token_heatmap")
    assert picture.height > 0 and picture.width > 0
    (text, *_) = events.Tensors("text/sample_completions/text_summary")
    assert b"| prompt | completion | R |" in text.tensor_proto.string_val[0]
    evaluated = run_cli(["eval", str(run), "--episodes", "3"], workdir)
    assert evaluated.returncode == 0, evaluated.stderr
    rows = [line for line in evaluated.stdout.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == (8 if algo == "ppo" else 16), evaluated.stdout  # 4 prompts x 2 or x 4
    for row in rows:
        prompt, completion, reward, values, advantages = row.strip("| ").split(" | ")
        assert len(prompt.split()) == 3 and abs(float(reward)) <= 10
        n = len(completion.split())
        assert len(advantages.split()) == n  # one A per generated token, <eos> included
        assert (len(values.split()) == n) if algo == "ppo" else values == "-"


def test_oracle_out_of_reach_is_one_warning_and_training_goes_on(run_cli, workdir, tb_scalars,
                                                                 find_run_dirs):  # fmt: skip
    result = run_cli(["algo=grpo", *TINY_TEXT, "env.max_new_tokens=8"], workdir)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "oracle skipped" in line]
    assert len(warnings) == 1 and "env.oracle_max_prefixes" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr
    (run,) = find_run_dirs(workdir)
    scalars = tb_scalars(run)
    assert "charts/reward_mean" in scalars and "charts/objective_optimal" not in scalars
    # without the oracle, the objective and the KL are estimated from the sampled completions
    assert "charts/objective" in scalars and "policy/kl_to_reference" in scalars
