"""The worker's layers, read from the source tree's import statements (ast, nothing imported):

* ``sentistream.worker.core`` imports no backend, no Kafka client and nothing of ``app``;
* ``sentistream.worker.app`` imports no Kafka client library;
* ``kafka`` is imported only inside ``worker/backends/kafka_python/`` and ``confluent_kafka``
  only inside ``worker/backends/confluent/`` (the bench's load tooling aside, and the modules
  in :data:`NOT_YET`);
* what a confluent worker imports (the confluent backend and everything it imports, as
  Python would load it) never reaches ``kafka``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
CLIENTS = ("kafka", "confluent_kafka")
HOME = {
    "kafka": "sentistream.worker.backends.kafka_python",
    "confluent_kafka": "sentistream.worker.backends.confluent",
}
ALLOWED_ELSEWHERE = ("sentistream.bench",)
"""The bench's load tooling drives Kafka itself (filling backlogs, reading results)."""
NOT_YET: dict[str, str] = {}
"""Modules that still import a client outside its backend: none (the CLI's Kafka tools use
``worker/backends/kafka_python/tools.py``)."""


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module, or a name inside one)
    top_level: bool  # runs when the module is imported (not inside a function)
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            continue  # never runs
        inner = top_level and not isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
        )
        yield child, inner
        yield from _walk(child, inner)


def imports_of(path: Path, root: Path) -> list[Import]:
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node, top in _walk(ast.parse(path.read_text(), str(path)), True):
        if isinstance(node, ast.Import):
            found += [Import(module, a.name, top, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [Import(module, f"{base}.{a.name}", top, node.lineno) for a in node.names]
    return found


def all_imports(root: Path) -> list[Import]:
    return [i for path in sorted(root.rglob("*.py")) for i in imports_of(path, root)]


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(root: Path) -> list[str]:
    """Every import that breaks a rule of this module's docstring, as ``module:line -> x``."""
    found = []
    for i in all_imports(root):
        where = f"{i.module}:{i.line} -> {i.target}"
        client = next((c for c in CLIENTS if within(i.target, c)), None)
        if within(i.module, "sentistream.worker.core"):
            for banned in ("sentistream.worker.backends", "sentistream.worker.app", *CLIENTS):
                if within(i.target, banned):
                    found.append(f"core imports {banned}: {where}")
        if client is None:
            continue
        if within(i.module, "sentistream.worker.app"):
            found.append(f"app imports a Kafka client: {where}")
        elif within(i.module, HOME[client]) or any(within(i.module, p) for p in ALLOWED_ELSEWHERE):
            continue
        elif NOT_YET.get(i.module) != client:
            found.append(f"{client} imported outside {HOME[client]}: {where}")
    return found


def loaded_by(root: Path, entry: str) -> set[str]:
    """The modules (of ``root`` and outside it) that importing everything under ``entry``
    loads: each module's top-level imports, the packages above each module, and, inside
    ``entry``, the imports its functions make when they run."""
    imports: dict[str, list[Import]] = {}
    for i in all_imports(root):
        imports.setdefault(i.module, []).append(i)
    ours = set(imports) | {module_name(p, root) for p in root.rglob("*.py")}
    todo = [m for m in ours if within(m, entry)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:n]) for n in range(1, len(parts))]
        for i in imports.get(name, []):
            if i.top_level or within(name, entry):
                target = i.target
                while target not in ours and "." in target and not target.startswith(CLIENTS):
                    target = target.rpartition(".")[0]  # a name imported from a module
                todo.append(target if target in ours else target.split(".")[0])
    return seen


def test_the_source_tree_keeps_its_layers() -> None:
    assert violations(SRC) == []


def test_a_confluent_worker_loads_no_kafka_python() -> None:
    loaded = loaded_by(SRC, "sentistream.worker.backends.confluent")
    assert "confluent_kafka" in loaded  # not vacuous
    assert "kafka" not in loaded


def test_a_confluent_worker_does_not_import_kafka_python_when_run() -> None:
    code = (
        "import sys\n"
        "from sentistream.worker.backends import kafka_client\n"
        "kafka_client('confluent')\n"
        "import sentistream.worker.backends.confluent.admin\n"
        "print(sorted(m for m in sys.modules if m == 'kafka' or m.startswith('kafka.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- the checks would notice ---------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "sentistream" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [p for p in (root / "sentistream").rglob("*") if p.is_dir()]:
        (folder / "__init__.py").touch()
    (root / "sentistream" / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"worker/core/loop.py": "import kafka\n"}, "core imports kafka"),
        (
            {"worker/core/loop.py": "def f():\n    from confluent_kafka import Producer\n"},
            "core imports confluent_kafka",
        ),
        (
            {"worker/core/loop.py": "from ..backends import kafka_client\n"},
            "core imports sentistream.worker.backends",
        ),
        (
            {"worker/core/loop.py": "from sentistream.worker.app.main import run\n"},
            "core imports sentistream.worker.app",
        ),
        ({"worker/app/main.py": "from kafka.errors import KafkaError\n"}, "app imports"),
        (
            {"worker/backends/__init__.py": "def f():\n    import confluent_kafka\n"},
            "confluent_kafka imported outside",
        ),
        (
            {"worker/backends/confluent/sink.py": "from kafka import KafkaProducer\n"},
            "kafka imported outside",
        ),
    ],
)
def test_the_layering_check_notices_a_bad_import(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    found = violations(_tree(tmp_path, files))
    assert found
    assert all(expected in f or "imported outside" in f for f in found), found
    assert any(expected in f for f in found), found


def test_the_confluent_check_notices_kafka_python_reached_through_shared_code(
    tmp_path: Path,
) -> None:
    root = _tree(
        tmp_path,
        {
            "worker/backends/confluent/sink.py": (
                "import confluent_kafka\nfrom sentistream.worker.backends.shared import x\n"
            ),
            "worker/backends/shared.py": "from sentistream.connection import watch\n",
            "connection.py": "import kafka.errors\n",
        },
    )
    assert "kafka" in loaded_by(root, "sentistream.worker.backends.confluent")
