"""Reading Sentiment140's layout in either encoding, and refusing anything else with the line
and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentistream.dataset import DatasetError, iter_sentiment140, load_labelled


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "tweets.csv"
    path.write_bytes(content)
    return path


def _row(target: str, text: str, encoding: str = "latin-1", query: str = "NO_QUERY") -> bytes:
    return f'"{target}","1","Mon Apr 06 22:19:45 PDT 2009","{query}","u","{text}"\n'.encode(
        encoding
    )


def test_reads_latin1_and_keeps_every_class(tmp_path: Path) -> None:
    path = _write(tmp_path, _row("0", "sad caf\u00e9") + _row("2", "meh") + _row("4", "yay"))
    tweets = load_labelled(path)
    assert tweets.texts == ["sad caf\u00e9", "meh", "yay"]
    assert tweets.labels == ["negative", "neutral", "positive"]
    assert tweets.encoding == "latin-1"
    assert tweets.counts() == {"negative": 1, "neutral": 1, "positive": 1}
    assert len(tweets.sha256) == 64


def test_utf8_file_keeps_emoji_and_non_latin_text(tmp_path: Path) -> None:
    text = "love it \U0001f602\U0001f44d\U0001f3fd caf\u00e9 \u6771\u4eac \u201cquoted\u201d"
    tweets = load_labelled(_write(tmp_path, _row("4", text, "utf-8")))
    assert tweets.encoding == "utf-8"
    assert tweets.texts == [text]


def test_latin1_file_is_not_mistaken_for_utf8(tmp_path: Path) -> None:
    # 0xe9 alone is "é" in latin-1 and an invalid byte in UTF-8.
    tweets = load_labelled(_write(tmp_path, _row("0", "caf\u00e9 \u00e0 la mode")))
    assert tweets.encoding == "latin-1"
    assert tweets.texts == ["caf\u00e9 \u00e0 la mode"]


def test_forced_encodings(tmp_path: Path) -> None:
    utf8 = _write(tmp_path, _row("4", "caf\u00e9", "utf-8"))
    assert load_labelled(utf8, "latin-1").texts == ["caf\u00c3\u00a9"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(_row("4", "ok") + _row("0", "caf\u00e9"))
    with pytest.raises(DatasetError, match=r"latin\.csv:2: not valid UTF-8 .* --encoding latin-1"):
        load_labelled(latin, "utf-8")


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_a_utf8_byte_order_mark_is_dropped(tmp_path: Path, encoding: str) -> None:
    body = _row("0", "first row", "utf-8") + _row("4", "caf\u00e9", encoding)
    tweets = load_labelled(_write(tmp_path, b"\xef\xbb\xbf" + body))
    assert tweets.labels == ["negative", "positive"]
    assert tweets.texts[0] == "first row"


def test_restricted_keeps_the_model_classes_and_counts_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, _row("0", "a") + _row("2", "b") + _row("2", "c") + _row("4", "d"))
    two = load_labelled(path).restricted(["negative", "positive"])
    assert two.texts == ["a", "d"]
    assert two.labels == ["negative", "positive"]
    assert two.dropped == {"neutral": 2}
    with pytest.raises(DatasetError, match="no rows of the classes negative, positive"):
        load_labelled(_write(tmp_path, _row("2", "only neutral"))).restricted(
            ["negative", "positive"]
        )


def test_query_column_is_kept_as_the_sub_source(tmp_path: Path) -> None:
    path = _write(tmp_path, _row("2", "x", query="semeval2016test") + _row("4", "y"))
    assert load_labelled(path).queries == ["semeval2016test", "NO_QUERY"]
    assert [row.query for row in iter_sentiment140(path)] == ["semeval2016test", "NO_QUERY"]


def test_quoted_commas_and_quotes_stay_in_the_text(tmp_path: Path) -> None:
    path = _write(tmp_path, b'"4","1","d","NO_QUERY","u","a, ""quoted"" b"\n')
    assert load_labelled(path).texts == ['a, "quoted" b']


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
        (b"", r"no rows \(the file is empty\)"),
    ],
    ids=["short-row", "long-row", "bad-target", "header", "empty"],
)
def test_refuses_other_layouts_naming_the_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        load_labelled(_write(tmp_path, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_labelled(tmp_path / "absent.csv")
