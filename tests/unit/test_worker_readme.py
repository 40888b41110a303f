"""Every test the README's "Delivery guarantees and failure handling" section names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def test_every_test_named_beside_a_guarantee_exists() -> None:
    section = _section("Delivery guarantees and failure handling")
    files = set(re.findall(r"\b(test_[a-z0-9_]+)\.py\b", section))
    tests = set(re.findall(r"\b(test_[a-z0-9_]+)\b", section)) - files
    defined = {
        match
        for path in (ROOT / "tests").rglob("test_*.py")
        for match in re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), re.M)
    }
    assert len(tests) >= 20
    assert sorted(tests - defined) == []
    existing_files = {p.stem for p in (ROOT / "tests").rglob("test_*.py")}
    assert sorted(files - existing_files) == []
