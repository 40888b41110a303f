"""Reading Sentiment140's layout, and refusing anything else with the line and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentistream.dataset import DatasetError, load_sentiment140


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "tweets.csv"
    path.write_bytes(content)
    return path


def _row(target: str, text: str) -> bytes:
    return f'"{target}","1","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","u","{text}"\n'.encode(
        "latin-1"
    )


def test_reads_latin1_and_maps_targets_and_drops_neutral(tmp_path: Path) -> None:
    path = _write(tmp_path, _row("0", "sad caf\u00e9") + _row("2", "meh") + _row("4", "yay"))
    tweets = load_sentiment140(path)
    assert tweets.texts == ["sad caf\u00e9", "yay"]
    assert tweets.labels == [0, 1]
    assert tweets.neutral_dropped == 1
    assert tweets.counts() == {"negative": 1, "positive": 1}
    assert len(tweets.sha256) == 64


def test_quoted_commas_and_quotes_stay_in_the_text(tmp_path: Path) -> None:
    path = _write(tmp_path, b'"4","1","d","NO_QUERY","u","a, ""quoted"" b"\n')
    assert load_sentiment140(path).texts == ['a, "quoted" b']


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            _row("0", "ok") + b'"4","1","d","q","u"\n',
            r"tweets.csv:2: expected 6 columns .* found 5",
        ),
        (_row("0", "ok") + b'"4","1","d","q","u","t","x"\n', r":2: expected 6 columns .* found 7"),
        (_row("0", "ok") + _row("1", "x"), r":2: target '1' is not 0, 2 or 4"),
        (b"target,id,date,query,user,text\n", r":1: target 'target' .* no header row"),
        (b"", r"no positive or negative rows"),
        (_row("2", "neutral only"), r"no positive or negative rows"),
    ],
    ids=["short-row", "long-row", "bad-target", "header", "empty", "only-neutral"],
)
def test_refuses_other_layouts_naming_the_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        load_sentiment140(_write(tmp_path, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_sentiment140(tmp_path / "absent.csv")
