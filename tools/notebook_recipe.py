"""Score the notebook's recipe on this run's test splits, for the model card.

    python tools/notebook_recipe.py runs/shipped

The notebook's recipe is what the project shipped before it had more than one source: a
two-class LSTM (Embedding 128, LSTM 196, recurrent dropout 0.2) trained on the Sentiment140
sample alone, with text cleaning v1. Today's code refuses that model (cleaning v1, manifest
format 1), so this script checks out that release (commit 4e41583) into .cache/, runs its
model with its own code on RUN/keras/test-*.csv and examples/demo-tweets.csv, and scores the
probabilities with today's scoring, so the figures compare with the LSTM and the baseline.
Writes RUN/notebook-recipe.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "4e41583"
CHECKOUT = ROOT / ".cache" / f"release-{RELEASE}"

_PREDICT = """
import csv, json, sys
from pathlib import Path
import numpy as np
from sentistream.inference import SentimentModel
model = SentimentModel.load(Path(sys.argv[1]) / "models" / "sentiment140-lstm", threads=1)
assert list(model.labels) == ["negative", "positive"], model.labels
for path, out in zip(sys.argv[2::2], sys.argv[3::2]):
    with open(path, encoding="utf-8", newline="") as handle:
        texts = [row[5] for row in csv.reader(handle)]
    np.save(out, model.predict_ids([model.encode(t) for t in texts], bucket_size=32))
"""


def _checkout() -> Path:
    if not (CHECKOUT / "src" / "sentistream").is_dir():
        CHECKOUT.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(CHECKOUT), RELEASE],
            check=True,
        )
    return CHECKOUT


def main(run: Path) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from sentistream.dataset import load_labelled
    from sentistream.scoring import HEADLINE_KEYS, evaluate_probabilities

    files = [*sorted((run / "keras").glob("test-*.csv")), ROOT / "examples" / "demo-tweets.csv"]
    old = _checkout()
    with tempfile.TemporaryDirectory() as scratch:
        outputs = [Path(scratch) / f"{i}.npy" for i in range(len(files))]
        pairs = [str(part) for pair in zip(files, outputs, strict=True) for part in pair]
        subprocess.run(
            [sys.executable, "-c", _PREDICT, str(old), *pairs],
            check=True,
            env={"PYTHONPATH": str(old / "src"), "PATH": "/usr/bin:/bin"},
        )
        results = {}
        for path, output in zip(files, outputs, strict=True):
            scores = evaluate_probabilities(
                load_labelled(path).labels, np.load(output), ["negative", "positive"]
            )
            results[path.name] = {key: scores[key] for key in HEADLINE_KEYS}
    (run / "notebook-recipe.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/shipped"))
