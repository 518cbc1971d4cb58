"""The README stays true: its config reference matches the schemas, and what it links exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def test_config_reference_matches_the_schemas() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "config_reference.py"), "--check", str(README)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr  # `make docs` regenerates it


def test_linked_images_and_files_exist() -> None:
    text = README.read_text()
    links = re.findall(r"\]\(((?:docs|scripts|conf)/[^)\s]+)\)", text)
    assert "docs/q_bias_cartpole.png" in links  # the DQN overestimation figure is shown
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, missing


def test_every_make_target_it_names_exists() -> None:
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"(?:^|`)make ([a-z][a-z-]*)", README.read_text(), flags=re.M))
    assert named - targets == set(), named - targets
