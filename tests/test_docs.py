"""The documentation says what the code does: every setting documented and every documented
setting real, every link and anchor found, every file, test and command named there present, a
README a newcomer can read, and no development history in it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from app.settings import ENV_PREFIX, Settings
from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as dashes."""
    heads = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_setting_is_documented_and_every_documented_one_is_real() -> None:
    real = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    documented = set(re.findall(r"`(DIGITS_[A-Z_]+)`", (ROOT / "docs" / "settings.md").read_text()))
    assert real - documented == set(), "settings missing from docs/settings.md"
    assert documented - real == set(), "docs/settings.md names settings the code does not have"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_anchors_are_found(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_files_and_commands_named_are_there(page: Path) -> None:
    text = page.read_text()
    named = r"\b((?:app|model|tests|bench|deploy|examples|docs)/[\w/.-]+\.(?:py|md|yml|yaml|lua))\b"
    for path in set(re.findall(named, text)):
        assert (ROOT / path).exists(), f"{page.name}: {path}"
    for module in set(re.findall(r"python -m ([\w.]+)", text)):
        assert importlib.util.find_spec(module) is not None, f"{page.name}: python -m {module}"


def test_the_readme_is_short_and_has_no_history() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in PAGES:
        assert not re.search(r"\bissues? \d+", page.read_text(), flags=re.I), page.name
    assert "make serve" in readme
    assert "make test" in readme
