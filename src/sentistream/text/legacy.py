"""Cleaning v2 and its Python vocabulary, as shipped until cleaning v3: kept only so the
benchmark (:mod:`sentistream.bench.tokenize`) can time the old pipeline beside the new one on
the same tweets in one run, and so tests can show what v3 changed. Nothing serves with it.

Fixes against the original notebook, each pinned by a regression test:

* The character filter is ``[^a-z0-9\\s]`` after lower-casing. The notebook's ``[^a-zA-z0-9\\s]``
  also kept ``[ \\ ] ^ _`` and the backtick, because ``A-z`` spans them.
* ``rt`` is dropped only as the retweet marker (a whole word), never inside words such as
  "start" or "heart".
* There is one ``maxlen``; tweets are never padded to one length when training and another when
  serving.

Cleaning v2 keeps what carries sentiment in UTF-8 data: emoticons become one word each
(``:-)`` and ``=)`` → ``emosmile``, ``:(`` → ``emosad``, ``<3`` → ``emoheart``, ...) and every
emoji is kept as a token of its own (skin tones and variation selectors dropped), and letters
outside a-z (``café``, ``naïve``, non-Latin scripts) are kept rather than cut out of words.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from sentistream.text.config import OOV_ID, PAD_ID, Side, TextConfig

__all__ = ["LEGACY_CLEANING_VERSION", "LegacyVocabulary", "clean", "tokenize"]

LEGACY_CLEANING_VERSION = 2

_URL = re.compile(r"(?:https?://|www\.)\S+")
_MENTION = re.compile(r"@\w+")
_RETWEET = re.compile(r"(?<![a-z0-9])rt(?![a-z0-9])")
_APOSTROPHE = re.compile(r"['\u2019`]")
_ELONGATED = re.compile(r"([a-z])\1{2,}")

#: Pictographic emoji, dingbats and symbols (hearts, suns, stars); each becomes one token.
_EMOJI_RANGES = "\U0001f300-\U0001faff\u2600-\u27bf\u2b00-\u2bff"
_EMOJI = re.compile(f"[{_EMOJI_RANGES}]")
#: Skin-tone modifiers, variation selectors and zero-width joiners: they refine an emoji's
#: look, not its meaning, so ``👍🏽`` and ``👍`` are one token.
_EMOJI_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0e\ufe0f\u200d]")
#: Everything that is not a letter, a digit, white space or an emoji (``_`` included: the
#: notebook's ``A-z`` kept it) becomes a space.
_NOT_KEPT = re.compile(f"[^\\w\\s{_EMOJI_RANGES}]|_")

#: Emoticons, matched on the original case before anything else is removed, each mapped to
#: one word that survives the character filter. Eyes ``:;=``, an optional nose, a mouth; and
#: the mirrored forms. Not inside words or numbers ("8:30", "http://").
_EYES, _NOSE = r"[:=]", r"[-o^']?"
_EMOTICONS: tuple[tuple[str, str], ...] = (
    ("emobrokenheart", r"</3"),
    ("emoheart", r"<3+"),
    ("emocry", r":'-?\(|;_;|T_T"),
    ("emolaugh", rf"{_EYES}{_NOSE}D+|[xX]-?D+"),
    ("emowink", rf";{_NOSE}[)\]D]|\(;"),
    ("emotongue", rf"[:;=]{_NOSE}[pPbþ]"),
    ("emosmile", rf"{_EYES}{_NOSE}[)\]}}3]+|[(\[]{_NOSE}{_EYES}|\^_*\^"),
    ("emosad", rf"{_EYES}{_NOSE}[(\[{{]+"),
    ("emoskeptic", rf"{_EYES}{_NOSE}[/\\|sS]"),
    ("emosurprise", rf"{_EYES}{_NOSE}[oO0]"),
)
_EMOTICON = re.compile(
    "|".join(f"(?P<{name}>{pattern})" for name, pattern in _EMOTICONS).join(
        (r"(?<![\w:/])(?:", r")(?![\w/])")
    )
)


def _emoticon_word(match: re.Match[str]) -> str:
    return f" {match.lastgroup} "


def clean(text: str) -> str:
    """Normalise one tweet to lower-case words separated by single spaces.

    HTML entities are decoded (the corpus stores ``&amp;``, ``&quot;``), links become ``url``
    and user mentions ``user`` (both say little about sentiment and a lot about the month the
    tweet was written), the retweet marker ``rt`` is dropped, apostrophes are removed so
    "don't" stays one word, letters repeated three or more times are cut to two ("sooo" and
    "soooooo" both become "soo"), and every other character that is not ``a-z``, ``0-9`` or
    white space becomes a space, except emoticons (one word each, such as ``emosmile``) and
    emoji (one token each); letters outside a-z are kept.
    """
    text = html.unescape(text)
    text = _URL.sub(" url ", text)
    text = _MENTION.sub(" user ", text)
    text = _EMOTICON.sub(_emoticon_word, text).lower()
    text = _EMOJI_MODIFIERS.sub("", text)
    text = _EMOJI.sub(r" \g<0> ", text)
    text = _APOSTROPHE.sub("", text)
    text = _NOT_KEPT.sub(" ", text)
    text = _RETWEET.sub(" ", text)
    text = _ELONGATED.sub(r"\1\1", text)
    return " ".join(text.split())


def tokenize(text: str) -> list[str]:
    """Clean ``text`` and split it into words."""
    return clean(text).split()


class LegacyVocabulary:
    """Frequency-ranked word → id map with a ``num_words`` cut.

    Id 0 is padding and id 1 stands for every word outside the vocabulary. The most frequent
    word gets id 2; ties keep the order in which the words were first seen, so fitting is
    deterministic.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words: tuple[str, ...] = tuple(words)
        self._ids = {word: index + 2 for index, word in enumerate(self.words)}
        if len(self._ids) != len(self.words):
            raise ValueError("vocabulary words must be unique")

    @classmethod
    def fit(cls, tokenized: Iterable[Sequence[str]], num_words: int) -> LegacyVocabulary:
        counts: Counter[str] = Counter()
        for tokens in tokenized:
            counts.update(tokens)
        return cls([word for word, _ in counts.most_common(num_words - 2)])

    @property
    def size(self) -> int:
        """Number of ids, padding and out-of-vocabulary included (the embedding's input dim)."""
        return len(self.words) + 2

    def encode(self, tokens: Sequence[str], maxlen: int, truncating: Side = "post") -> list[int]:
        """Map words to ids and cut to ``maxlen``.

        A tweet with no words left after cleaning (only emoji, say) becomes ``[OOV_ID]``: the
        model always sees at least one step, in training and in serving alike.
        """
        ids = [self._ids.get(token, OOV_ID) for token in tokens] or [OOV_ID]
        if len(ids) > maxlen:
            ids = ids[:maxlen] if truncating == "post" else ids[-maxlen:]
        return ids

    def encode_text(self, text: str, config: TextConfig) -> list[int]:
        return self.encode(tokenize(text), config.maxlen, config.truncating)

    def to_json(self) -> str:
        return json.dumps({"pad_id": PAD_ID, "oov_id": OOV_ID, "words": list(self.words)})

    @classmethod
    def from_json(cls, payload: str) -> LegacyVocabulary:
        data = json.loads(payload)
        if data.get("pad_id") != PAD_ID or data.get("oov_id") != OOV_ID:
            raise ValueError(
                f"vocabulary uses pad_id={data.get('pad_id')} oov_id={data.get('oov_id')}, "
                f"this code expects {PAD_ID} and {OOV_ID}"
            )
        return cls(data["words"])
