"""The floor plan holds: every import inside rltrain points down the layers, and none forms a cycle.

    application  rltrain.cli, rltrain.api, rltrain.app.*
    runner       rltrain.runner.*
    algorithms   rltrain.algos.*
    blocks       rltrain.blocks.*, rltrain.networks.*, rltrain.envs.*
    foundation   rltrain.config.*, rltrain.errors, rltrain.logging, rltrain.trackers, rltrain.tags,
                 rltrain.atomic_write

Imports are read from the source (ast), function-level ones included: a lazy import that points up
is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rltrain"
LAYERS = {  # the first dotted parts after "rltrain." -> rank, higher imports lower
    "cli": 4, "app": 4, "api": 4,
    "runner": 3,
    "algos": 2,
    "blocks": 1, "networks": 1, "envs": 1,
    "config": 0, "errors": 0, "logging": 0, "trackers": 0, "tags": 0, "conf": 0,
    "atomic_write": 0,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported rltrain module, line, at module level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from rltrain.networks import distributions` imports that submodule
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                for a in node.names
            ]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "rltrain" or name.startswith("rltrain."):
                found.append((name, node.lineno, id(node) in top))
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """`rltrain.algos.ppo.PPO` -> `rltrain.algos.ppo`: the longest prefix that is a module."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if m != "rltrain" and layer_of(m) is None]
    assert not unplaced, f"modules outside the floor plan: {unplaced}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "rltrain"))
def test_imports_point_down(module: str) -> None:
    own = layer_of(module)
    assert own is not None
    upward = []
    for name, line, _ in imports_of(MODULES[module]):
        target = resolve(name)
        if target is None or target == "rltrain":
            continue
        rank = layer_of(target)
        if rank is not None and rank > own:
            upward.append(f"line {line}: {target}")
    assert not upward, f"{module} imports from a layer above it: {upward}"


def test_no_import_cycles() -> None:
    """Module-level imports between rltrain modules form no cycle (depth-first search)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name, _, at_top in imports_of(path):
            target = resolve(name)
            # (a package's own submodules importing it back is how packages load, not a cycle)
            if at_top and target not in (None, module, "rltrain") and not module.startswith(
                f"{target}."
            ):
                graph[module].add(target)  # type: ignore[arg-type]
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    """The test above can fail: a runner module importing the application is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from rltrain.app.sweeps import train_seeds\n")
    ((name, line, at_top),) = imports_of(bad)
    assert resolve(name) == "rltrain.app.sweeps" and line == 2 and not at_top
    assert layer_of("rltrain.app.sweeps") > layer_of("rltrain.runner.loop")  # type: ignore[operator]
