"""Tweet normalisation (cleaning v3), written as a Hugging Face ``tokenizers`` pipeline.

Every step is a regular expression that runs inside the tokenizer's own normaliser (Rust,
Oniguruma regexes), so the text the trainer sees and the text the worker serves go through the
same compiled code, read from the model folder's ``tokenizer.json``. Nothing of it runs in
Python at serving time.

The steps, in order (each one is a field of :class:`Steps`, so it can be measured on and off;
``tools/text_ablation.py`` does, per source):

1. (off) Unicode NFKC: changed no figure here and costs a pass.
2. The HTML entities the corpora hold (``&amp; &quot; &lt; &gt; &#39; &nbsp;``) become spaces
   (every one of them would further on); ``&lt;3`` is a heart.
3. Links → ``xxurl``, user mentions → ``xxuser``; (off) e-mail addresses → ``xxemail``.
4. Skin tones, variation selectors and zero-width joiners dropped (``👍🏽`` is ``👍``); then
   the retweet marker ``rt``, only as a whole word (never in "start" or "heart").
5. Emoticons → one word each (``:-)`` ``=)`` → ``emosmile``, ``:(`` → ``emosad``,
   ``<3`` → ``emoheart``, ...), matched on the original case; not inside times or links.
6. Apostrophes removed, so "don't" and "dont" are one word and "not" stays a word of its own.
7. Hashtags: ``#notgood`` → ``xxhashtag notgood`` (the marker, then the word).
8. Numbers (``41``, ``8:30``, ``3.5``, ``6/12``) → ``xxnumber``; digits inside words
   (``mp3``, ``2day``) are kept.
9. A run of ``!`` / ``?`` → its first mark plus ``xxrepeat``.
10. A word in capitals (``A-Z``, two letters or more) gets ``xxcaps`` before it.
11. Lower case.
12. A word with a letter repeated three times or more gets ``xxelong`` before it and the run
    is cut to two letters (``goooood`` → ``xxelong good``, ``sooooo`` → ``xxelong soo``).

The pre-tokenizer keeps runs of letters, marks and digits, every emoji, every ``!`` and ``?``
as tokens and drops everything else (white space, other punctuation, and ``_``: the notebook's
``A-z`` kept it). Markers are plain lower-case words (fastai's ``xx`` prefix), so they pass
every later step unchanged and normalising twice changes nothing.

Fixes against the original notebook, each pinned by a regression test: no ``A-z`` range (it
kept ``[ \\ ] ^ _`` and the backtick), ``rt`` dropped only as a whole word, and one ``maxlen``
for training and serving (:class:`~sentistream.text.config.TextConfig`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache

from tokenizers import PreTokenizedString, Regex, normalizers, pre_tokenizers

__all__ = [
    "ALLCAPS",
    "ELONGATED",
    "EMAIL",
    "EMOTICON_WORDS",
    "HASHTAG",
    "MARKERS",
    "NUMBER",
    "REPEATED",
    "URL",
    "USER",
    "Steps",
    "clean",
    "normalizer",
    "pre_tokenizer",
    "tokenize",
]

USER = "xxuser"
URL = "xxurl"
EMAIL = "xxemail"
NUMBER = "xxnumber"
HASHTAG = "xxhashtag"
ALLCAPS = "xxcaps"
ELONGATED = "xxelong"
REPEATED = "xxrepeat"
MARKERS = (USER, URL, EMAIL, NUMBER, HASHTAG, ALLCAPS, ELONGATED, REPEATED)

#: Pictographic emoji, dingbats and symbols (hearts, suns, stars); each becomes one token.
EMOJI_RANGES = "\U0001f300-\U0001faff\u2600-\u27bf\u2b00-\u2bff"
#: Skin-tone modifiers, variation selectors and zero-width joiners: they refine an emoji's
#: look, not its meaning.
EMOJI_MODIFIERS = "[\U0001f3fb-\U0001f3ff\ufe0e\ufe0f\u200d]"

#: Emoticons, matched on the original case, each mapped to one word. Eyes ``:;=``, an optional
#: nose, a mouth; and the mirrored forms. Not inside words or numbers ("8:30", "http://").
_EYES, _NOSE = r"[:=]", r"[-o^']?"
_EMOTICONS: tuple[tuple[str, str], ...] = (
    ("emobrokenheart", r"(?:<|&lt;)/3"),
    ("emoheart", r"(?:<|&lt;)3+"),
    ("emocry", r":'-?\(|;_;|T_T"),
    ("emolaugh", rf"{_EYES}{_NOSE}D+|[xX]-?D+"),
    ("emowink", rf";{_NOSE}[)\]D]|\(;"),
    ("emotongue", rf"[:;=]{_NOSE}[pPbþ]"),
    ("emosmile", rf"{_EYES}{_NOSE}[)\]}}3]+|[(\[]{_NOSE}{_EYES}|\^_*\^"),
    ("emosad", rf"{_EYES}{_NOSE}[(\[{{]+"),
    ("emoskeptic", rf"{_EYES}{_NOSE}[/\\|sS]"),
    ("emosurprise", rf"{_EYES}{_NOSE}[oO0]"),
)
EMOTICON_WORDS = tuple(word for word, _ in _EMOTICONS)

#: Not preceded / followed by a letter, mark or digit: a whole word's edges.
_START = r"(?<![\p{L}\p{M}\p{N}])"
_END = r"(?![\p{L}\p{M}\p{N}])"
_ENTITIES = (
    ("&quot;", '"'),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&#0*39;", "'"),
    ("&nbsp;", " "),
    ("&amp;", "&"),  # last: "&amp;lt;" is "&lt;" once decoded, as html.unescape reads it
)


@dataclass(frozen=True)
class Steps:
    """Which normalisation steps run; the defaults are cleaning v3 as shipped.

    The switches exist to measure each step (``tools/text_ablation.py``); a tokenizer built
    with any of them off is still a complete pipeline in its ``tokenizer.json``.
    """

    nfkc: bool = False
    """Unicode NFKC first (full-width letters, ligatures); off: it costs a pass and changed
    no figure (``tools/text_ablation.py``)."""
    entities: bool = True
    urls: bool = True
    emails: bool = False
    """``xxemail``; off: an address reads as ``name xxuser com`` (rare; measured no gain)."""
    mentions: bool = True
    emoticons: bool = True
    hashtags: bool = True
    hashtag_split: bool = False
    """Split ``#NotGood`` at its capitals (``xxhashtag not good``); hashtags in one case stay."""
    numbers: bool = True
    allcaps: bool = True
    punctuation: bool = True
    """Keep ``!`` and ``?`` as tokens and mark their runs; off: they are dropped like ``.``."""
    elongation: bool = True
    elongation_keep: int = 2
    """Letters a run of three or more is cut to (1: ``sooo`` → ``so``; 2: → ``soo``)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        """The switches that differ from the shipped defaults, e.g. ``-allcaps``."""
        default = Steps()
        changed = [
            (
                f"-{f.name}"
                if value is False
                else f"+{f.name}"
                if value is True
                else f"{f.name}={value}"
            )
            for f in fields(self)
            if (value := getattr(self, f.name)) != getattr(default, f.name)
        ]
        return " ".join(changed) or "v3"


def _replace(pattern: str, content: str) -> normalizers.Replace:
    return normalizers.Replace(Regex(pattern), content)


def _steps(steps: Steps) -> list[normalizers.Normalizer]:  # noqa: PLR0912
    """The normaliser's steps.

    Every ``Replace`` costs about half a microsecond a tweet even when nothing matches (it
    rebuilds the string's alignments), so steps with the same output share one pattern, and
    patterns start with a literal or a small class where possible (Oniguruma skips ahead to
    those) and use ``\\b`` rather than look-behinds.
    """
    out: list[normalizers.Normalizer] = []
    if steps.nfkc:
        out.append(normalizers.NFKC())
    # A leading space: tokenizers 0.23 panics when a zero-width match at offset 0 is replaced
    # and a later step (Lowercase) changes the string's length.
    out.append(normalizers.Prepend(" "))
    if steps.entities:
        # Decoded, "&", '"', ">" and a no-break space would all become spaces further on;
        # "&lt;3" and "&lt;/3" are hearts (below), any other "&lt;" a space too.
        out.append(_replace(r"&(?:amp|quot|gt|nbsp|#0*39);|&lt;(?!/?3)", " "))
    if steps.urls:
        out.append(_replace(r"(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\.)\S+", f" {URL} "))
    if steps.emails:
        out.append(_replace(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", f" {EMAIL} "))
    if steps.mentions:
        out.append(_replace(r"@\w+", f" {USER} "))
    # Before the retweet rule: a variation selector is a mark (\\p{M}), so beside "RT" it
    # would keep "RT" a word, and a second pass, the selector gone, would drop the "rt".
    out.append(_replace(EMOJI_MODIFIERS, ""))
    # "_" ends a word here as everywhere (the pre-tokenizer drops it), hence not \\b
    out.append(_replace(r"[rR](?<![\p{L}\p{M}\p{N}][rR])[tT](?![\p{L}\p{M}\p{N}])", " "))
    if steps.emoticons:
        out += [
            _replace(rf"(?<![\w:/])(?:{pattern})(?![\w/])", f" {word} ")
            for word, pattern in _EMOTICONS
        ]
    out.append(_replace("['\u2019\u2018`]", ""))
    if steps.hashtags:
        if steps.hashtag_split:
            out.append(_replace(r"(?<=#\p{L}*\p{Ll})(?=\p{Lu})", " "))
        out.append(_replace(r"#(?=\w)", f" {HASHTAG} "))
    if steps.numbers:
        out.append(
            _replace(
                r"\d(?<![\p{L}\p{M}\p{N}]\d)\d*(?:[.,:/]\d+)*(?![\p{L}\p{M}\p{N}])",
                f" {NUMBER} ",
            )
        )
    if steps.punctuation:
        out += [
            # a run of two or more is its first mark plus the marker
            _replace(r"!(?<![!?]!)[!?]+", f" ! {REPEATED} "),
            _replace(r"\?(?<![!?]\?)[!?]+", f" ? {REPEATED} "),
        ]
    if steps.allcaps:
        out.append(_replace(r"\b(?=[A-Z]{2,}\b)", f" {ALLCAPS} "))
    out.append(normalizers.Lowercase())
    if steps.elongation:
        keep = steps.elongation_keep
        if keep not in (1, 2):
            raise ValueError(f"elongation_keep must be 1 or 2, got {keep}")
        # before the white space ahead of a chunk holding a letter three times (cheaper than
        # every word boundary; the chunk's punctuation is dropped by the pre-tokenizer)
        out.append(_replace(r"\s(?=\S*?(\p{L})\1\1)", f" {ELONGATED} "))
        out.append(_replace(r"(\p{L})\1\K\1+" if keep == 2 else r"(\p{L})\K\1\1+", ""))
    return out


def normalizer(steps: Steps = Steps()) -> normalizers.Normalizer:
    """The normaliser of cleaning v3 (or of the ``steps`` given): one Rust object."""
    return normalizers.Sequence(_steps(steps))


def pre_tokenizer(steps: Steps = Steps()) -> pre_tokenizers.PreTokenizer:
    """One pass that keeps the tokens and drops the rest: runs of letters, marks and digits,
    each emoji, each ``!`` and ``?``. Everything else (white space, other punctuation, ``_``:
    the notebook's ``A-z`` kept it) separates tokens and is dropped."""
    kept = "!?" if steps.punctuation else ""
    return pre_tokenizers.Split(
        Regex(rf"[\p{{L}}\p{{M}}\p{{N}}]+|[{EMOJI_RANGES}{kept}]"), behavior="removed", invert=True
    )


@lru_cache(maxsize=16)
def _pipeline(steps: Steps) -> tuple[normalizers.Normalizer, pre_tokenizers.PreTokenizer]:
    return normalizer(steps), pre_tokenizer(steps)


def tokenize(text: str, steps: Steps = Steps()) -> list[str]:
    """The words of ``text`` after normalisation: what a word-level vocabulary looks up."""
    norm, pre = _pipeline(steps)
    pretokenized = PreTokenizedString(norm.normalize_str(_valid(text)))
    pre.pre_tokenize(pretokenized)
    return [word for word, _, _ in pretokenized.get_splits()]


def clean(text: str, steps: Steps = Steps()) -> str:
    """``text`` normalised, its tokens joined by single spaces."""
    return " ".join(tokenize(text, steps))


def _valid(text: str) -> str:
    """``text`` without lone surrogates, which cannot cross into Rust (the worker's decoder
    refuses them already; this keeps the trainer and tests from crashing on one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8").replace("?", " ")
    return text
