"""Every test the docs name exists: the delivery guarantees and failure handling
(docs/guarantees.md) name a test beside each promise, and the other pages name tests too."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUARANTEES = ROOT / "docs" / "guarantees.md"
PAGES = sorted(
    {
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "BENCHMARKS.md",
        ROOT / "deploy" / "README.md",
        *(ROOT / "docs").rglob("*.md"),
    }
)

_DEFINED = {
    match
    for path in (ROOT / "tests").rglob("test_*.py")
    for match in re.findall(r"^(?:async )?def (test_[a-z0-9_]+)", path.read_text(), re.M)
}
_FILES = {p.stem for p in (ROOT / "tests").rglob("test_*.py")}


def _named(text: str) -> tuple[set[str], set[str]]:
    """The test files and the test functions ``text`` names."""
    files = set(re.findall(r"\b(test_[a-z0-9_]+)\.py\b", text))
    tests = set(re.findall(r"\b(test_[a-z0-9_]+)\b", text)) - files
    return files, tests


def test_every_test_named_beside_a_guarantee_exists() -> None:
    files, tests = _named(GUARANTEES.read_text(encoding="utf-8"))
    assert len(tests) >= 20
    assert sorted(tests - _DEFINED) == []
    assert sorted(files - _FILES) == []


def test_every_test_named_in_any_page_exists() -> None:
    missing = []
    for page in PAGES:
        files, tests = _named(page.read_text(encoding="utf-8"))
        missing += [f"{page.relative_to(ROOT)}: {name}" for name in sorted(tests - _DEFINED)]
        missing += [f"{page.relative_to(ROOT)}: {name}.py" for name in sorted(files - _FILES)]
    assert missing == []
