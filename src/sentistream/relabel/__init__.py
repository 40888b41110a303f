"""``sentistream relabel``: label a bounded range of the input topic again with a chosen model,
beside the live workers (a consumer of its own on assigned partitions, a group of its own),
with the worker's own loop, then say what the new model changed. See ``docs/relabel.md``."""

from sentistream.relabel.range import OffsetRange, RangeError, RangeSpec, When
from sentistream.relabel.run import RelabelError, RelabelJob, Summary, run_group_id, run_relabel

__all__ = [
    "OffsetRange",
    "RangeError",
    "RangeSpec",
    "RelabelError",
    "RelabelJob",
    "Summary",
    "When",
    "run_group_id",
    "run_relabel",
]
