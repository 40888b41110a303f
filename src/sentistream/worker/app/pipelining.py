"""How deep the inference pipeline runs, and the interpreter setting it needs."""

from __future__ import annotations

import logging
import sys

from sentistream.worker.settings import WorkerSettings

__all__ = [
    "PIPELINE_SWITCH_INTERVAL_S",
    "configure_pipeline",
    "effective_pipeline_depth",
    "share_the_gil_finely",
]

log = logging.getLogger("sentistream.worker")

#: The interpreter's GIL switch interval while inference runs on a thread of its own.
PIPELINE_SWITCH_INTERVAL_S = 0.0005


def share_the_gil_finely() -> None:
    """Hand the GIL back and forth every 0.5 ms instead of Python's 5 ms.

    ONNX Runtime releases the GIL while a call runs, but to return it must take the GIL back,
    and the loop's thread, busy tokenizing, gives it up only at the switch interval: each
    inference call (a few ms for a bucket of 32 rows) then waits up to 5 ms more, and the two
    threads barely overlap. The figures behind the 0.5 ms are in BENCHMARKS.md ("the GIL").
    """
    sys.setswitchinterval(PIPELINE_SWITCH_INTERVAL_S)


def configure_pipeline(settings: WorkerSettings) -> int:
    """The pipeline depth to run (:func:`effective_pipeline_depth`); a pipelined worker also
    shares the GIL finely (:func:`share_the_gil_finely`)."""
    depth = effective_pipeline_depth(settings)
    if depth > 1:
        share_the_gil_finely()
    return depth


def effective_pipeline_depth(settings: WorkerSettings) -> int:
    """The pipeline depth the worker runs: exactly-once runs the synchronous path (1).

    Its transaction for a batch takes the group generation of the polls since the previous
    batch (``batch_group``), and an abort rewinds the consumer; with batches still in the
    pipeline both would mix batches up, so correctness wins over the overlap.
    """
    if settings.exactly_once and settings.pipeline_depth > 1:
        log.info("exactly-once: inference is not pipelined (pipeline depth 1)")
        return 1
    return settings.pipeline_depth
