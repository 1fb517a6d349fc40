"""The code's shape: no import cycle among app/ and model/, no module past about 300 lines, the
batcher free of the app, the service free of scipy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("app", "model")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a module imports when it is imported (not inside functions, not only
    for type checking)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in known)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in known else node.module)
            elif isinstance(node, ast.If | ast.Try):
                visit([*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])])
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return {name for name in found if name in known}


def test_no_import_cycle() -> None:
    graph = {name: imports(path, set(modules())) for name, path in modules().items()}
    done: set[str] = set()

    def walk(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for imported in sorted(graph[name]):
            walk(imported, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        walk(name, [])


def test_the_batcher_and_the_model_know_nothing_of_the_app() -> None:
    known = set(modules())
    assert not {m for m in imports(modules()["app.batcher"], known) if m.startswith("app")}
    for name, path in modules().items():
        if name.startswith("model"):
            assert not {m for m in imports(path, known) if m.startswith("app")}, name


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_past_about_300_lines(name: str) -> None:
    assert len(modules()[name].read_text().splitlines()) <= 320
