"""Imports go one way, core ← cluster ← retrieval, train ← serve ← eval ← demo ← cli, form no
cycle, and always name `ragtune.…` (the only name the wheel installs)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.helpers import ROOT

LAYERS = {"core": 0, "cluster": 1, "retrieval": 2, "train": 2, "serve": 3, "eval": 4, "demo": 5, "cli": 6}
TOP = len(LAYERS)  # `ragtune` itself (`python -m ragtune`) sits above every part


def package_dirs() -> dict[str, Path]:
    """Import name → folder, from pyproject's setuptools package-dir."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in setuptools["package-dir"].items()}


def modules() -> dict[str, Path]:
    """Every module of the ragtune package: dotted name → file."""
    found = {}
    for package, folder in package_dirs().items():
        for path in folder.glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


MODULES = modules()


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:  # `from ragtune.cli import run` imports the module ragtune.cli.run
                child = f"{node.module}.{alias.name}"
                found.append((node.lineno, child if child in MODULES else node.module))
    return found


def layer(module: str) -> tuple[str, int]:
    part = module.split(".")[1] if module.count(".") else ""
    return part, LAYERS.get(part, TOP)


def edges() -> dict[str, set[str]]:
    return {
        name: {target for _, target in imported(path) if target in MODULES and target != name}
        for name, path in MODULES.items()
    }


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_stack(module: str):
    own_part, own_layer = layer(module)
    wrong = []
    for line, target in imported(MODULES[module]):
        if target.split(".")[0] in LAYERS or target.split(".")[0] == "configs":
            wrong.append(f"line {line}: `{target}` is not importable from the wheel; use ragtune.{target}")
        elif target.startswith("ragtune."):
            part, target_layer = layer(target)
            if part != own_part and target_layer >= own_layer:
                source = own_part or "ragtune"
                wrong.append(
                    f"line {line}: {source} (layer {own_layer}) imports {target} (layer {target_layer})"
                )
    assert not wrong, f"{MODULES[module].relative_to(ROOT)}: " + "; ".join(wrong)


def test_no_import_cycles():
    graph, state, stack = edges(), {}, []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import cycle: " + " → ".join(cycle))


def test_the_layer_rules_see_every_part():
    parts = {name.split(".")[1] for name in package_dirs() if name.count(".")}
    assert parts - {"configs"} == set(LAYERS), "a new part needs its place in LAYERS"
    assert len(MODULES) > 50 and all(layer(m)[0] in LAYERS or layer(m)[1] == TOP for m in MODULES)
