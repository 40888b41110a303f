"""The Markdown docs hold together: every relative link and ``#anchor`` resolves, every source
path the pages name exists, and the README stays short enough to read in five minutes."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250

PAGES = sorted(
    {
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "BENCHMARKS.md",
        ROOT / "deploy" / "README.md",
        *(ROOT / "docs").rglob("*.md"),
    }
)
# Written by `make export` and `make bench`, not by hand: their links are checked, the paths
# they mention in passing are not.
GENERATED = {ROOT / "docs" / "model-card.md", *(ROOT / "docs" / "bench").rglob("*.md")}

_FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def _without_code_blocks(markdown: str) -> str:
    return _FENCE.sub("", markdown)


def _prose(markdown: str) -> str:
    """The text outside fenced blocks and code spans, where a link is a link."""
    return _CODE_SPAN.sub("", _without_code_blocks(markdown))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links reduced to their text, code marks
    dropped) lower-cased, punctuation other than ``-`` and ``_`` removed, spaces as ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs, GitHub's ``-1``, ``-2`` … for repeated
    ones, and explicit HTML anchors."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in _HEADING.findall(_without_code_blocks(markdown)):
        base = slug(heading)
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    found.update(_HTML_ANCHOR.findall(markdown))
    return found


def links(markdown: str) -> list[str]:
    prose = _prose(markdown)
    return _LINK.findall(prose) + _REFERENCE.findall(prose)


def _broken(page: Path) -> list[str]:
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if not target or _SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"{_rel(page)}: {target}: no such file")
            continue
        if (
            anchor
            and resolved.suffix == ".md"
            and anchor not in anchors(resolved.read_text(encoding="utf-8"))
        ):
            problems.append(f"{_rel(page)}: {target}: no heading with that anchor")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert _broken(page) == []


def test_every_page_is_reachable_from_the_readme() -> None:
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached or not page.is_file():
            continue
        reached.add(page)
        for target in links(page.read_text(encoding="utf-8")):
            path = target.partition("#")[0]
            if path and not _SCHEME.match(target) and path.endswith(".md"):
                todo.append((page.parent / path).resolve())
    assert sorted(_rel(p) for p in set(PAGES) - reached) == []


# A path in a code span: a Python file (`worker/core/loop.py`, `tests/unit/fakes.py`), or a
# folder of the source, tests or deploy tree (`worker/core/`, `deploy/helm/sentistream`).
_PY_PATH = re.compile(r"(?<![\w./-])((?:[\w-]+/)+[\w-]+\.py)\b")
_FOLDER = re.compile(
    r"^((?:src|tests|deploy|docs|tools|models|examples|worker|cli|trainer|export|bench)/[\w./-]*)$"
)
_BASES = (ROOT, ROOT / "src" / "sentistream", ROOT / "tests")


def named_paths(markdown: str) -> set[str]:
    spans = [span for _, span in _CODE_SPAN.findall(_without_code_blocks(markdown))]
    paths = {path for span in spans for path in _PY_PATH.findall(span)}
    paths |= {span for span in spans if _FOLDER.match(span)}
    return paths


@pytest.mark.parametrize("page", [p for p in PAGES if p not in GENERATED], ids=_rel)
def test_every_source_path_a_page_names_exists(page: Path) -> None:
    missing = [
        path
        for path in sorted(named_paths(page.read_text(encoding="utf-8")))
        if not any((base / path).exists() for base in _BASES)
    ]
    assert missing == []


def test_the_readme_fits_on_a_few_screens() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES


def test_the_checks_would_notice_a_broken_link_a_missing_anchor_and_a_missing_path(
    tmp_path: Path,
) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## The `step()`, once\n", encoding="utf-8")
    page.write_text(
        "# Page\n\n## Page\n\n[ok](other.md#the-step-once) [ok](#page-1) [ok](https://x.org/y)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [bad](#page-2)\n"
        "```\n[in a code block](nowhere.md)\n```\n`[in a span](nowhere.md)` `worker/nowhere.py`\n",
        encoding="utf-8",
    )
    assert _broken(page) == [
        "page.md: missing.md: no such file",
        "page.md: other.md#nope: no heading with that anchor",
        "page.md: #page-2: no heading with that anchor",
    ]
    assert named_paths(page.read_text(encoding="utf-8")) == {"worker/nowhere.py"}
