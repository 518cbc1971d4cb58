"""The built-in rewards of env=llm against hand-computed values, and the prompt files."""

from __future__ import annotations

import json

import pytest

from rltrain.envs.llm import Prompt, load_prompts, make_reward
from rltrain.errors import UserError


def test_length_window_in_words():
    reward = make_reward("length:3-5", [])
    assert reward("p", "one two three", None) == 1.0
    assert reward("p", "one two three four five", None) == 1.0
    assert reward("p", "one", None) == pytest.approx(0.8)  # 2 words short
    assert reward("p", " ".join(["w"] * 9), None) == pytest.approx(0.6)  # 4 words long
    assert reward("p", " ".join(["w"] * 100), None) == -1.0  # the floor


def test_keyword_is_literal_and_regex_is_a_pattern():
    keyword, regex = make_reward("keyword:a.b", []), make_reward("regex:^[0-9]+$", [])
    assert keyword("p", "xx a.b yy", None) == 1.0 and keyword("p", "aXb", None) == 0.0
    assert regex("p", "123", None) == 1.0 and regex("p", "12a", None) == 0.0


def test_exact_reads_the_last_number_for_numeric_answers_else_the_whole_text():
    prompts = [Prompt("What is 2+3?", "5"), Prompt("Capital of France?", "Paris")]
    exact = make_reward("exact", prompts)
    assert exact("q", "2 + 3 = 5", "5") == 1.0
    assert exact("q", "5.0", "5") == 1.0
    assert exact("q", "5 or maybe 6", "5") == 0.0  # the last number counts
    assert exact("q", "five", "5") == 0.0
    assert exact("q", "  Paris ", "Paris") == 1.0 and exact("q", "Paris!", "Paris") == 0.0


def test_exact_needs_an_answer_on_every_prompt():
    with pytest.raises(UserError, match='"answer" field'):
        make_reward("exact", [Prompt("a", "1"), Prompt("b")])


def test_prompt_files(tmp_path):
    text = tmp_path / "p.txt"
    text.write_text("first\n\n  second  \n", encoding="utf-8")
    assert [p.text for p in load_prompts(str(text))] == ["first", "  second  "]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": "2+2?", "answer": 4}) + "\n", encoding="utf-8")
    assert load_prompts(str(jsonl)) == [Prompt("2+2?", "4")]
