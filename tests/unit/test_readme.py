"""The README and docs/ stay true: what they link exists, the README stays short, the make
targets they name exist, and docs/config.md's config reference matches the schemas."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CONFIG_DOC = REPO / "docs" / "config.md"
README_MAX_BYTES = 12_288

# [text](target) and ![alt](target); a target may carry a "title" after a space
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def relative_links(path: Path) -> list[str]:
    """Link targets in a markdown file that point into the repository (no URLs, no bare anchors);
    fenced code blocks are skipped, since shell examples are not links."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    links = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I) or target.startswith("#"):
            continue  # http(s)://, mailto: and the like; an anchor in the same file
        links.append(target.split("#", 1)[0])
    return links


def test_the_docs_exist() -> None:
    names = {p.name for p in markdown_files()}
    expected = {
        "config.md", "metrics.md", "troubleshooting.md", "atari.md", "sweeps.md", "benchmarks.md"
    }
    assert expected <= names, f"missing docs pages: {sorted(expected - names)}"


def test_every_relative_link_resolves() -> None:
    missing = []
    for path in markdown_files():
        for link in relative_links(path):
            if not (path.parent / link).exists():
                missing.append(f"{path.relative_to(REPO)}: {link}")
    assert not missing, "links to files that do not exist:\n" + "\n".join(missing)


def test_the_readme_shows_the_q_bias_figure_and_links_every_docs_page() -> None:
    links = set(relative_links(README))
    assert "docs/q_bias_cartpole.png" in links, "the README shows the DQN overestimation figure"
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages <= links, f"docs pages the README does not link: {sorted(pages - links)}"


def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes, over {README_MAX_BYTES}; move detail into docs/"
    )


def test_every_make_target_they_name_exists() -> None:
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    for path in markdown_files():
        named = set(re.findall(r"(?:^|`)make ([a-z][a-z-]*)", path.read_text(), flags=re.M))
        unknown = sorted(named - targets)
        assert not unknown, f"{path.relative_to(REPO)} names targets the Makefile lacks: {unknown}"


def test_config_reference_matches_the_schemas() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "config_reference.py"), "--check", str(CONFIG_DOC)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr  # `make docs` regenerates it
