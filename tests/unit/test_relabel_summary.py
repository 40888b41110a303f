"""relabel without a broker: the comparison of new and original labels, the header naming the
run on every record it writes, and the summary it prints."""

from __future__ import annotations

import json
from collections import Counter

from sentistream.relabel.compare import compare, label_ref
from sentistream.relabel.marking import RELABEL_HEADER, MarkedTransactionalSink
from sentistream.relabel.range import (
    OffsetRange,
)
from sentistream.worker.core.ports import Outgoing, TopicPartition
from tests.unit.fakes import (
    FakeTransactionalSink,
    FakeTransactionLog,
)

IN, OUT, DLQ = "tweets", "relabels", "tweets.dlq"
P0, P1 = TopicPartition(IN, 0), TopicPartition(IN, 1)
T0 = 1_700_000_000_000


# -- the comparison -------------------------------------------------------------------------


def label(partition: int, offset: int, name: str, sha: str = "new", topic: str = IN) -> bytes:
    return json.dumps(
        {
            "id": f"{partition}-{offset}",
            "label": name,
            "model": {"name": "m", "version": "1", "sha256": sha},
            "source": {"topic": topic, "partition": partition, "offset": offset},
        }
    ).encode()


def test_the_table_counts_matches_by_source_record():
    ranges = {P0: OffsetRange(0, 4), P1: OffsetRange(0, 2)}
    original = [
        label(0, 0, "negative", "old"),
        label(0, 1, "negative", "old"),
        label(0, 1, "positive", "old"),  # redone by an at-least-once worker: the last counts
        label(0, 2, "positive", "old"),
        label(0, 9, "positive", "old"),  # outside the range
        label(1, 0, "negative", "old"),
        label(1, 1, "negative", "old"),  # no new label: dead-lettered by the relabel
        label(0, 3, "positive", "old", topic="elsewhere"),
    ]
    new = [
        label(0, 0, "negative"),
        label(0, 1, "negative"),
        label(0, 2, "positive"),
        label(0, 3, "negative"),  # its original is a dead letter
        label(1, 0, "positive"),
        label(1, 0, "positive", sha="other-run"),  # another model's relabel in the same topic
        b"not json",
        None,
    ]
    c = compare(new, original, ranges, "new")
    assert c.pairs == {
        ("negative", "negative"): 1,
        ("positive", "negative"): 1,
        ("positive", "positive"): 1,
        ("negative", "positive"): 1,
    }
    assert (c.matched, c.differ, c.new_only, c.original_only) == (4, 2, 1, 1)
    assert c.table()[0].split() == ["original", "\\", "new", "negative", "positive"]
    assert c.table()[1].split() == ["negative", "1", "1"]
    assert c.as_dict()["table"] == {
        "negative": {"negative": 1, "positive": 1},
        "positive": {"negative": 1, "positive": 1},
    }


def test_connect_json_labels_are_read_too():
    value = json.dumps(
        {
            "schema": {"type": "struct"},
            "payload": {
                "source_topic": IN,
                "source_partition": 2,
                "source_offset": 7,
                "label": "neutral",
                "model_sha256": "abc",
            },
        }
    ).encode()
    ref = label_ref(value)
    assert ref is not None
    assert (ref.partition, ref.offset, ref.label, ref.model_sha256) == (2, 7, "neutral", "abc")


def test_every_record_a_relabel_writes_names_its_run():
    log = FakeTransactionLog()
    inner = FakeTransactionalSink(log)
    sink = MarkedTransactionalSink(inner, "sentistream-relabel-0123")  # type: ignore[arg-type]  # no close()
    sink.begin()
    sink.send(Outgoing(OUT, b"k", b"label", [("trace", b"1")], 2))
    sink.send(Outgoing(DLQ, b"k", b"bad", []))
    sink.commit(1.0)
    sent = log.visible()
    assert [s.header(RELABEL_HEADER) for s in sent] == [b"sentistream-relabel-0123"] * 2
    assert sent[0].header("trace") == b"1"
    assert (sent[0].topic, sent[0].partition, sent[0].value) == (OUT, 2, b"label")


def test_the_summary_says_what_was_read_labelled_and_changed():
    from sentistream.relabel.compare import Comparison
    from sentistream.relabel.report import render
    from sentistream.relabel.run import Summary
    from sentistream.relabel.source import Progress

    summary = Summary(
        "sentistream-relabel-0123",
        {"name": "m", "version": "2", "sha256": "abcdef0123456789"},
        {P0: OffsetRange(0, 10), P1: OffsetRange(3, 5)},
        "exactly-once",
        OUT,
        DLQ,
        progress=Progress(8, 8, 4),
        read=8,
        labels={"negative": 5, "positive": 2},
        dead_letters=1,
        seconds=2.0,
        complete=True,
        compared_with="tweet-labels",
        comparison=Comparison(Counter({("negative", "negative"): 4, ("positive", "negative"): 1})),
    )
    text = "\n".join(render(summary))
    assert "relabel of tweets offsets 0:0-10 1:3-5" in text
    assert "records read   8 in 2.0 s (4 records/s); 4 done by an earlier run" in text
    assert "labels         7 (negative 5, positive 2)" in text
    assert "dead letters   1" in text
    assert "complete: every partition read to its end offset" in text
    assert "5 matched, 1 differ (20.0%)" in text
    assert summary.as_dict()["comparison"]["table"]["positive"] == {"negative": 1, "positive": 0}
