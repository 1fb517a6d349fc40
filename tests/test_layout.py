"""The code's shape: no import circle among app/, model/ and bench/ (imports inside functions and
for type checking count too), imports running one way between the packages, no module past about
300 lines, and no run of six lines written twice in two modules."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("app", "model", "bench")

#: The networks' modules (the CNN and the digit gate): what a checkpoint is and what the service loads
#: beside the image path.
CORE = (
    "model.network",
    "model.gate",
    "model.contract",
    "model.checkpoint",
    "model.refusal",
    "model.explain",
    "model.data",
)
#: What each part of the code may import from the project, besides itself.
ALLOWED = {
    "model.imaging": ("model.contract",),
    "model.core": CORE,
    "model.synth": (*CORE, "model.imaging"),
    "model.train": (*CORE, "model.imaging", "model.synth"),
    "model.evaluate": (*CORE, "model.imaging", "model.synth"),
    "app": (*(m for m in CORE if m != "model.data"), "model.imaging"),
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules a module imports anywhere in it: at the top, inside functions, or for
    type checking. A bench/ script imports the scripts beside it by their bare names."""

    def resolve(module: str) -> str:
        if name.startswith("bench.") and f"bench.{module}" in known:
            return f"bench.{module}"
        return module

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = resolve(node.module)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if full in known else module)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = set(modules())
    return {name: imports(name, path, known) for name, path in modules().items()}


def part(name: str) -> str:
    """The part of the code a module belongs to, as ALLOWED names them."""
    if name in CORE or name == "model":
        return "model.core"
    return ".".join(name.split(".")[:2]) if name.startswith("model.") else name.split(".")[0]


def test_no_import_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def walk(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for imported in sorted(edges[name]):
            walk(imported, [*trail, name])
        done.add(name)

    for name in sorted(edges):
        walk(name, [])


def test_imports_run_one_way() -> None:
    """Imaging knows nothing of training, synthesis or evaluation; synthesis may use imaging; the
    service uses the image path and the network's modules only; the batcher knows nothing of the app."""
    wrong = []
    for name, imported in graph().items():
        own = part(name)
        if own not in ALLOWED:
            continue  # bench/ may use anything
        for m in imported:
            if part(m) != own and not any(m == a or m.startswith(a + ".") for a in ALLOWED[own]):
                wrong.append(f"{name} imports {m}")
    assert not wrong, wrong
    assert not {m for m in graph()["app.batcher"] if m.startswith("app")}


def test_the_parts_are_what_the_rules_name() -> None:
    """Every module of model/ falls in a part the rules know (a new sub-package needs its rule)."""
    assert {part(name) for name in modules() if name.startswith("model")} == set(ALLOWED) - {"app"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_past_about_300_lines(name: str) -> None:
    assert len(modules()[name].read_text().splitlines()) <= 320


def significant(line: str) -> bool:
    """A line that says something: not blank, not a lone bracket, not an import or a decorator."""
    s = line.strip()
    return len(s) > 3 and not s.startswith(("import ", "from ", "@", "#", '"""'))


def test_no_six_lines_written_twice_in_two_modules() -> None:
    """Six identical lines in a row (spacing aside) in two modules are one function's job."""
    runs: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for name, path in modules().items():
        lines = [line.strip() for line in path.read_text().splitlines()]
        for i in range(len(lines) - 5):
            window = tuple(lines[i : i + 6])
            if sum(map(significant, window)) >= 4:
                runs[window].add(name)
    repeated = {"\n".join(w): sorted(names) for w, names in runs.items() if len(names) > 1}
    assert not repeated, repeated
