"""The serving side must never load TensorFlow (nor pandas or scikit-learn)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "tf2onnx", "pandas", "sklearn")


@pytest.mark.parametrize(
    "modules",
    [
        ["sentistream.worker.app.main"],
        ["sentistream.cli"],
        ["sentistream.inference", "sentistream.predict", "sentistream.replay", "sentistream.tail"],
    ],
)
def test_serving_modules_do_not_import_training_libraries(modules: list[str]) -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", f"{modules} imported {result.stdout.strip()}"


def test_the_check_would_notice_tensorflow() -> None:
    # Guard against a vacuous test: the trainer does import it.
    code = "import sys, sentistream.trainer.model; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"
