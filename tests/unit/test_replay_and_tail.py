"""`sentistream produce`'s file reading and pacing, and `sentistream tail`'s formatting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentistream.replay import Pacer, ReplayError, ReplayItem, read_tweets, replay
from sentistream.tail import HEADER, LEGEND, Summary, follow, format_label

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-tweets.csv"


def test_a_sentiment140_csv_keeps_its_ids() -> None:
    items = read_tweets(DEMO)
    assert len(items) == len(DEMO.read_bytes().splitlines())
    assert items[0].id == "900000001"
    assert json.loads(items[0].value()) == {"id": "900000001", "text": items[0].text}
    assert items[0].key() == b"900000001"


def test_a_text_file_is_one_tweet_per_line_numbered_from_one(tmp_path: Path) -> None:
    path = tmp_path / "tweets.txt"
    path.write_text("first tweet\n\n  \nthird line tweet\n", encoding="utf-8")
    assert [(i.id, i.text) for i in read_tweets(path)] == [
        ("1", "first tweet"),
        ("4", "third line tweet"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.txt", None, "no such file"),
        ("empty.txt", b"", "no tweets"),
        ("latin1.txt", b"caf\xe9\n", "not UTF-8 text"),
        ("bad.csv", b'"0","1","d","q","u"\n', "expected 6 columns"),
        ("empty.csv", b"", "no tweets"),
    ],
)
def test_files_that_cannot_be_replayed_get_a_clear_error(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReplayError, match=message):
        read_tweets(path)


def test_pacer_spaces_sends_without_real_sleeping() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pacer.wait()
    assert slept == pytest.approx([0.1, 0.1])
    unpaced = Pacer(None, clock=lambda: now[0], sleep=sleep)
    unpaced.wait()
    assert len(slept) == 2


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def add_errback(self, callback: Any) -> None:
        if self.error is not None:
            callback(self.error)


class _Producer:
    """Refuses every third record; raises KeyboardInterrupt at the ``interrupt_at``-th send."""

    def __init__(self, interrupt_at: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = False
        self.interrupt_at = interrupt_at

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        if len(self.sent) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.sent.append((topic, key, value))
        return _Future(RuntimeError("no ack") if len(self.sent) % 3 == 0 else None)

    def flush(self) -> None:
        self.flushed = True


ITEMS = [ReplayItem(str(n), f"tweet {n}") for n in range(1, 5)]


def test_replay_sends_every_item_keyed_by_id_and_collects_what_was_not_acknowledged() -> None:
    producer = _Producer()
    ticks = iter([10.0, 12.5])
    done = replay(producer, "raw", ITEMS, pacer=Pacer(None), clock=lambda: next(ticks))
    assert [(t, k) for t, k, _ in producer.sent] == [
        ("raw", b"1"),
        ("raw", b"2"),
        ("raw", b"3"),
        ("raw", b"4"),
    ]
    assert producer.flushed
    assert (done.sent, done.elapsed_s, done.interrupted) == (4, 2.5, False)
    assert [str(e) for e in done.failures] == ["no ack"]


def test_replay_loops_until_interrupted_and_says_so_without_flushing() -> None:
    producer = _Producer(interrupt_at=11)
    passes: list[int] = []

    def progress(items: Any) -> Any:
        passes.append(len(items))
        return items

    done = replay(producer, "raw", ITEMS, pacer=Pacer(None), loop=True, progress=progress)
    assert done.sent == 10
    assert done.interrupted
    assert not producer.flushed
    assert passes == [4, 4, 4]


def _label(label: str, offset: int, event: str, labeled: str) -> bytes:
    return json.dumps(
        {
            "id": str(offset),
            "text": "a   tweet\nwith lines",
            "label": label,
            "probabilities": {"negative": 0.25, "positive": 0.75},
            "source": {"topic": "tweets", "partition": 1, "offset": offset},
            "event_time": event,
            "labeled_at": labeled,
        }
    ).encode()


def test_format_label_is_one_line() -> None:
    line = format_label(
        _label("positive", 7, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00")
    )
    assert line.startswith("positive 0.750  p1@7")
    assert line.endswith("a tweet with lines")
    assert "not a sentistream label" in format_label(b"plain")


def test_summary_counts_labels_throughput_and_latency() -> None:
    summary = Summary()
    summary.add(_label("positive", 1, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00.100+00:00"))
    summary.add(_label("negative", 2, "2026-01-01T00:00:01+00:00", "2026-01-01T00:00:02+00:00"))
    summary.add(b"not json")
    text = summary.render()
    assert "2 labels: negative 1 (50%), positive 1 (50%)" in text
    assert "throughput: 1 tweets/s over 2.0 s" in text
    assert "p50 1000 ms" in text


class _Script:
    """A poll that returns scripted batches, each taking one second of a fake clock."""

    def __init__(self, batches: list[list[bytes | None]]) -> None:
        self.batches = batches
        self.now = 0.0

    def poll(self) -> list[bytes | None]:
        self.now += 1.0
        return self.batches.pop(0) if self.batches else []


def test_follow_stops_after_max_messages() -> None:
    script = _Script([[b"a", b"b"], [b"c", b"d"]])
    seen: list[bytes | None] = []
    assert follow(script.poll, seen.append, max_messages=3, clock=lambda: script.now) == 3
    assert seen == [b"a", b"b", b"c"]


def test_follow_stops_after_the_idle_timeout_and_hints_once_when_nothing_came() -> None:
    script = _Script([[], [], []])
    hints: list[float] = []
    emitted = follow(
        script.poll,
        lambda _value: None,
        idle_timeout_s=5,
        hint_after_s=2,
        hint=lambda: hints.append(script.now),
        clock=lambda: script.now,
    )
    assert emitted == 0
    assert hints == [2.0]
    assert script.now == 5.0


def test_follow_gives_no_hint_once_something_arrived_and_resets_the_idle_clock() -> None:
    script = _Script([[], [b"x"], [], [], [b"y"]])
    hints: list[float] = []
    seen: list[bytes | None] = []
    emitted = follow(
        script.poll,
        seen.append,
        idle_timeout_s=3,
        hint_after_s=3,
        hint=lambda: hints.append(script.now),
        clock=lambda: script.now,
    )
    assert (emitted, seen, hints) == (2, [b"x", b"y"], [])
    assert script.now == 8.0  # last value at 5 s, then 3 s without one


def test_the_header_lines_up_with_the_rows() -> None:
    row = format_label(_label("negative", 12, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01Z"))
    assert HEADER.index("source") == row.index("p1@12")
    assert HEADER.index("text") == row.index("a tweet")
    assert "p2@0" in LEGEND
