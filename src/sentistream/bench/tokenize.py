"""Tokenizing cost, the old pipeline beside the new one, in one run on the same tweets.

* ``v2 (Python)``: cleaning v2 (:mod:`sentistream.text.legacy`) and its dict vocabulary, one
  tweet at a time, as the worker ran it until cleaning v3;
* ``v3 (tokenizers), one tweet a call``: :meth:`TweetTokenizer.encode_text`;
* ``v3 (tokenizers), encode_batch``: :meth:`TweetTokenizer.encode_batch` over micro-batches,
  the serving path (one Rust call a batch, GIL released);
* ``floor``: the same vocabulary in ``tokenizers`` with no normaliser and a plain white-space
  split, by batches: what ``tokenizers`` costs before any tweet normalisation.

Both vocabularies are fitted on the same tweets with the same ``num_words``, or the v3 one is
read from a model folder (``--model-dir``). Runs are interleaved (old, new, batch, old, ...)
and the best of ``--repeats`` is kept, so a busy machine slows all of them alike. Pin it to
one core to measure one core's cost: ``taskset -c 1 python -m sentistream.bench.tokenize``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sentistream.text import TextConfig, TweetTokenizer, legacy

__all__ = ["TokenizeCost", "measure", "render"]


@dataclass(frozen=True)
class TokenizeCost:
    pipeline: str
    tweets: int
    seconds: float
    """Wall time of the best run."""
    cpu_seconds: float
    """CPU time of the process in its best run (all threads): what the work costs on a
    shared machine, where wall time also holds other people's jobs."""
    mean_tokens: float

    @property
    def us_per_tweet(self) -> float:
        return self.seconds / self.tweets * 1e6

    @property
    def cpu_us_per_tweet(self) -> float:
        return self.cpu_seconds / self.tweets * 1e6


def _batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def measure(
    texts: Sequence[str],
    tokenizer: TweetTokenizer,
    old: legacy.LegacyVocabulary,
    config: TextConfig,
    *,
    batch_size: int = 256,
    repeats: int = 5,
) -> list[TokenizeCost]:
    """The cost of each pipeline over ``texts`` (see the module docstring)."""
    batches = _batches(texts, batch_size)

    def run_old() -> list[list[int]]:
        return [old.encode_text(t, config) for t in texts]

    def run_single() -> list[list[int]]:
        return [tokenizer.encode_text(t, config) for t in texts]

    def run_batch() -> list[list[int]]:
        return [ids for batch in batches for ids in tokenizer.encode_batch(batch, config)]

    bare = _bare(tokenizer)

    def run_floor() -> list[list[int]]:
        return [ids for batch in batches for ids in bare.encode_batch(batch, config)]

    runs: list[tuple[str, Callable[[], list[list[int]]]]] = [
        ("v2 (Python clean + dict), one tweet a call", run_old),
        ("v3 (tokenizers), one tweet a call", run_single),
        (f"v3 (tokenizers), encode_batch of {batch_size}", run_batch),
        (
            f"floor: tokenizers, no normaliser, white-space split, batches of {batch_size}",
            run_floor,
        ),
    ]
    best = {name: float("inf") for name, _ in runs}
    best_cpu = dict(best)
    tokens: dict[str, float] = {}
    for _ in range(repeats):
        for name, run in runs:
            started, started_cpu = time.perf_counter(), time.process_time()
            ids = run()
            best[name] = min(best[name], time.perf_counter() - started)
            best_cpu[name] = min(best_cpu[name], time.process_time() - started_cpu)
            tokens[name] = sum(len(row) for row in ids) / len(ids)
    return [
        TokenizeCost(name, len(texts), best[name], best_cpu[name], tokens[name]) for name, _ in runs
    ]


def _bare(tokenizer: TweetTokenizer) -> TweetTokenizer:
    from tokenizers import Tokenizer, pre_tokenizers

    data = json.loads(tokenizer.to_json())
    data["normalizer"] = None
    bare = Tokenizer.from_str(json.dumps(data))
    bare.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return TweetTokenizer(bare)


def render(costs: Sequence[TokenizeCost]) -> str:
    lines = [
        "| pipeline | µs per tweet (wall) | µs per tweet (CPU) | tokens per tweet |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {c.pipeline} | {c.us_per_tweet:,.2f} | {c.cpu_us_per_tweet:,.2f} "
        f"| {c.mean_tokens:.1f} |"
        for c in costs
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from sentistream.bench.raw import sample
    from sentistream.dataset import load_labelled

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/sentiment140-100k/sentiment140-100k.csv"),
    )
    parser.add_argument("--tweets", type=int, default=20_000)
    parser.add_argument("--num-words", type=int, default=30_000)
    parser.add_argument("--maxlen", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="read the v3 tokenizer from this folder"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    all_texts = load_labelled(args.data).texts
    texts = sample(all_texts, args.tweets)
    config = TextConfig(maxlen=args.maxlen, num_words=args.num_words)
    if args.model_dir is not None:
        from sentistream.manifest import load_verified

        manifest, tokenizer = load_verified(args.model_dir, need_onnx=False)
        config = manifest.text.config()
    else:
        tokenizer = TweetTokenizer.train(all_texts, args.num_words)
    old = legacy.LegacyVocabulary.fit((legacy.tokenize(t) for t in all_texts), args.num_words)
    costs = measure(texts, tokenizer, old, config, batch_size=args.batch_size, repeats=args.repeats)
    context = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "(unset: on)"),
        "tweets": len(texts),
        "data": str(args.data),
    }
    if args.json:
        print(
            json.dumps(
                {**context, "costs": [asdict(c) | {"us_per_tweet": c.us_per_tweet} for c in costs]},
                indent=2,
            )
        )
    else:
        print(json.dumps(context))
        print(render(costs))


if __name__ == "__main__":
    main()
