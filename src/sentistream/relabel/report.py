"""What a relabel shows: a progress bar with an ETA on stderr while it reads (tqdm), and the
summary at the end (text for people, a dict for ``--json``)."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from sentistream.relabel.run import Summary
from sentistream.relabel.source import Progress

__all__ = ["TqdmBar", "render"]


class TqdmBar:
    """Offsets read of those the run has to read, with rate and ETA."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self._bar = tqdm(
            total=total,
            unit=" records",
            unit_scale=True,
            file=stream or sys.stderr,
            desc="relabel",
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def show(self, progress: Progress) -> None:
        step = progress.done - self._bar.n
        if step > 0:
            self._bar.update(step)
        elif step < 0:  # an aborted transaction rewound the consumer
            self._bar.n = progress.done
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _n(value: int) -> str:
    return f"{value:,}"


def render(summary: Summary) -> list[str]:
    """The summary as lines of text."""
    model = summary.model
    spans = " ".join(
        f"{tp.partition}:{r.start}-{r.end}" for tp, r in sorted(summary.ranges.items())
    )
    topic = next(iter(summary.ranges)).topic if summary.ranges else "?"
    rate = f" ({summary.read / summary.seconds:,.0f} records/s)" if summary.seconds else ""
    by_class = ", ".join(f"{name} {_n(n)}" for name, n in summary.labels.items())
    lines = [
        f"relabel of {topic} offsets {spans or '(none)'}",
        f"  model          {model.get('name')} {model.get('version')} "
        f"(sha256 {model.get('sha256', '')[:12]}…)",
        f"  into           {summary.output_topic} (dead letters: {summary.dlq_topic}), "
        f"{summary.guarantee}, group {summary.group_id}",
        f"  records read   {_n(summary.read)} in {summary.seconds:.1f} s{rate}"
        + (
            f"; {_n(summary.progress.skipped)} done by an earlier run"
            if summary.progress.skipped
            else ""
        ),
        f"  labels         {_n(summary.labelled)}" + (f" ({by_class})" if by_class else ""),
        f"  dead letters   {_n(summary.dead_letters)}",
    ]
    if summary.complete:
        lines.append("  complete: every partition read to its end offset, everything committed")
    else:
        lines.append(f"  NOT complete: {summary.detail or 'the range was not read to its end'}")
    comparison = summary.comparison
    if comparison is not None:
        share = f" ({comparison.differ / comparison.matched:.1%})" if comparison.matched else ""
        lines.append(
            f"compared with {summary.compared_with} by source partition and offset: "
            f"{_n(comparison.matched)} matched, {_n(comparison.differ)} differ{share}"
        )
        lines += ["  " + line for line in comparison.table()]
        lines.append(
            f"  ({_n(comparison.new_only)} new label(s) without an original, "
            f"{_n(comparison.original_only)} original(s) without a new label)"
        )
    return lines
