"""Model ceiling per CPU-second: tweets ONNX Runtime labels per second of its own CPU time.

    python tools/ceiling_cpu.py MODEL_DIR [MODEL_DIR ...] [--data CSV] [--tweets N]
        [--label NAME ...] [--json OUT] [--rounds R]

One intra-op thread, micro-batches of 256 split into length buckets of 32 (the worker's
defaults), best of 5 passes over the same tweets. Wall-clock throughput on a machine that is
also running other work measures the other work; CPU time of this process does not (or much
less), so two models can be compared on a busy machine. Each folder runs in a fresh
interpreter; `MODEL_DIR=PYTHONPATH` runs it with another release's code (e.g.
`.cache/release-4e41583/models/sentiment140-lstm=.cache/release-4e41583/src`). With
``--rounds`` above 1 the folders are measured in turn, round after round (interleaved, so a
change in the machine's load hits every model alike), and each model's best round counts.
``--json`` writes the figures for ``tools/model_card.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_MEASURE = """
import csv, json, random, sys, time
from pathlib import Path
from sentistream.inference import SentimentModel
model = SentimentModel.load(Path(sys.argv[1]), threads=1)
with open(sys.argv[2], encoding="latin-1", newline="") as handle:
    texts = [row[5] for row in csv.reader(handle)]
random.Random(0).shuffle(texts)
ids = [model.encode(t) for t in texts[: int(sys.argv[3])]]
batches = [ids[i : i + 256] for i in range(0, len(ids), 256)]
model.predict_ids(batches[0], bucket_size=32)
best_cpu = best_wall = float("inf")
for _ in range(5):
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        model.predict_ids(batch, bucket_size=32)
    best_cpu = min(best_cpu, time.process_time() - cpu)
    best_wall = min(best_wall, time.perf_counter() - wall)
print(json.dumps({"tweets": len(ids), "per_cpu_second": len(ids) / best_cpu,
                  "per_wall_second": len(ids) / best_wall}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="../shared/data/sentiment140-100k/sentiment140-100k.csv")
    parser.add_argument("--tweets", type=int, default=20_000)
    parser.add_argument("--label", action="append", default=[], help="One per MODEL_DIR.")
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here.")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_intermixed_args()  # --label NAME before each MODEL_DIR
    labels = args.label or args.models
    if len(labels) != len(args.models):
        parser.error("give one --label per MODEL_DIR, or none")
    best: dict[str, dict[str, float]] = {}
    for round_number in range(args.rounds):
        for label, spec in zip(labels, args.models, strict=True):
            folder, _, code = spec.partition("=")
            env = dict(os.environ)
            if code:
                env["PYTHONPATH"] = str(Path(code).resolve())
            result = subprocess.run(
                [sys.executable, "-c", _MEASURE, folder, args.data, str(args.tweets)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"round {round_number + 1}, {label} ({folder}): "
                f"{figures['per_cpu_second']:,.0f} tweets per CPU-second "
                f"({figures['per_wall_second']:,.0f} per wall-second), {figures['tweets']} tweets"
            )
            kept = best.get(label)
            if kept is None or figures["per_cpu_second"] > kept["per_cpu_second"]:
                best[label] = {**figures, "folder": folder}
    if args.json:
        document = {
            "method": "one ONNX Runtime thread, micro-batches of 256 in length buckets of 32, "
            f"{args.tweets} Sentiment140 tweets, best of 5 passes per round, best of "
            f"{args.rounds} interleaved round(s); CPU time of the measuring process",
            "models": [{"label": label, **best[label]} for label in labels],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
