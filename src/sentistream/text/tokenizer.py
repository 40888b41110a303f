"""The tokenizer of a model: cleaning v3 plus a vocabulary, as one Hugging Face ``tokenizers``
pipeline saved as ``tokenizer.json`` in the model folder.

The trainer builds it (:meth:`TweetTokenizer.train` from an iterator of texts), writes it
(:meth:`TweetTokenizer.save`), and the exporter's parity check and the worker load that same
file (:meth:`TweetTokenizer.from_file`): normaliser, pre-tokenizer and vocabulary come from the
file, so training and serving cannot tokenize differently. Encoding runs in Rust;
:meth:`TweetTokenizer.encode_batch` releases the GIL for the whole batch.

Id 0 is padding (``[PAD]``) and id 1 stands for everything outside the vocabulary
(``[UNK]``), as :data:`~sentistream.text.config.PAD_ID` and
:data:`~sentistream.text.config.OOV_ID` say. A tweet with no token left becomes ``[OOV_ID]``
(the model always sees one step); a tweet longer than ``maxlen`` is cut on the
``truncating`` side. Both happen here, in Python, on the ids, the same way for both paths.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from tokenizers import Tokenizer, models, trainers

from sentistream.text.config import OOV_ID, PAD_ID, Side, TextConfig
from sentistream.text.normalize import Steps, _valid, normalizer, pre_tokenizer

__all__ = ["PAD_TOKEN", "TOKENIZER_FILE", "UNK_TOKEN", "TokenizerKind", "TweetTokenizer"]

TOKENIZER_FILE = "tokenizer.json"
PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
_SPECIAL = [PAD_TOKEN, UNK_TOKEN]

#: ``wordlevel``: one id per word (GloVe can start it). ``bpe`` / ``unigram``: subword pieces
#: learned from the training tweets (word-internal pieces carry a ``##`` prefix in BPE).
TokenizerKind = Literal["wordlevel", "bpe", "unigram"]
_KINDS = {"WordLevel": "wordlevel", "BPE": "bpe", "Unigram": "unigram"}


def _pipeline(model: models.Model, steps: Steps) -> Tokenizer:
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizer(steps)
    tokenizer.pre_tokenizer = pre_tokenizer(steps)
    return tokenizer


def _word_level(words: Sequence[str], steps: Steps) -> Tokenizer:
    vocab = {PAD_TOKEN: PAD_ID, UNK_TOKEN: OOV_ID}
    for word in words:
        if word in vocab:
            raise ValueError(f"vocabulary words must be unique ({word!r} twice)")
        vocab[word] = len(vocab)
    return _pipeline(models.WordLevel(vocab, unk_token=UNK_TOKEN), steps)


def _without_added_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """The trainers register ``[PAD]``/``[UNK]`` as added tokens, which ``tokenizers`` matches
    in the raw text before normalising: a tweet holding the text ``[PAD]`` would get id 0 in
    the middle. They stay in the vocabulary; only the raw-text matching goes."""
    data = json.loads(tokenizer.to_str())
    data["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(data))


class TweetTokenizer:
    """A verified Hugging Face tokenizer: ``[PAD]`` = 0, ``[UNK]`` = 1, no padding or
    truncation of its own (``maxlen`` is the manifest's), no special tokens added."""

    def __init__(self, tokenizer: Tokenizer | Sequence[str]) -> None:
        if not isinstance(tokenizer, Tokenizer):  # a word list, as Vocabulary(words) took
            tokenizer = _word_level(tokenizer, Steps())
        pad_id, unk_id = tokenizer.token_to_id(PAD_TOKEN), tokenizer.token_to_id(UNK_TOKEN)
        if pad_id != PAD_ID or unk_id != OOV_ID:
            raise ValueError(
                f"tokenizer uses pad_id={pad_id} oov_id={unk_id} ({PAD_TOKEN}, {UNK_TOKEN}), "
                f"this code expects {PAD_ID} and {OOV_ID}"
            )
        kind = json.loads(tokenizer.to_str())["model"]["type"]
        if kind not in _KINDS:
            raise ValueError(f"tokenizer model {kind!r}; this code serves {sorted(_KINDS)}")
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.kind: TokenizerKind = _KINDS[kind]  # type: ignore[assignment]
        vocab = tokenizer.get_vocab(with_added_tokens=False)
        ordered = sorted(vocab.items(), key=lambda item: item[1])
        if [i for _, i in ordered] != list(range(len(ordered))):
            raise ValueError("tokenizer ids are not 0..n-1")
        self.words: tuple[str, ...] = tuple(word for word, _ in ordered[2:])
        """Tokens of ids 2, 3, ... (words for ``wordlevel``, pieces for subword models)."""

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_words(cls, words: Sequence[str], *, steps: Steps = Steps()) -> TweetTokenizer:  # noqa: B008
        """A word-level tokenizer whose word ``words[i]`` has id ``i + 2``."""
        return cls(_word_level(words, steps))

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        num_words: int,
        *,
        kind: TokenizerKind = "wordlevel",
        steps: Steps = Steps(),  # noqa: B008
        min_frequency: int = 0,
    ) -> TweetTokenizer:
        """Learn a vocabulary of at most ``num_words`` ids (``[PAD]`` and ``[UNK]``
        included) from raw ``texts``, in Rust.

        ``wordlevel`` ranks words by frequency, ties in alphabetical order (deterministic).
        """
        if num_words < 3:
            raise ValueError(f"num_words must be at least 3, got {num_words}")
        trainer: trainers.Trainer
        if kind == "wordlevel":
            model: models.Model = models.WordLevel(unk_token=UNK_TOKEN)
            trainer = trainers.WordLevelTrainer(
                vocab_size=num_words,
                min_frequency=min_frequency,
                special_tokens=_SPECIAL,
                show_progress=False,
            )
        elif kind == "bpe":
            model = models.BPE(unk_token=UNK_TOKEN, continuing_subword_prefix="##")
            trainer = trainers.BpeTrainer(
                vocab_size=num_words,
                min_frequency=max(min_frequency, 2),
                special_tokens=_SPECIAL,
                continuing_subword_prefix="##",
                limit_alphabet=1000,
                show_progress=False,
            )
        elif kind == "unigram":
            model = models.Unigram()
            trainer = trainers.UnigramTrainer(
                vocab_size=num_words,
                special_tokens=_SPECIAL,
                unk_token=UNK_TOKEN,
                show_progress=False,
            )
        else:
            raise ValueError(f"tokenizer kind must be wordlevel, bpe or unigram, got {kind!r}")
        tokenizer = _pipeline(model, steps)
        tokenizer.train_from_iterator((_valid(t) for t in texts), trainer=trainer)
        return cls(_without_added_tokens(tokenizer))

    @classmethod
    def fit(
        cls,
        tokenized: Iterable[Sequence[str]],
        num_words: int,
        *,
        steps: Steps = Steps(),  # noqa: B008
    ) -> TweetTokenizer:
        """A word-level vocabulary from already tokenized tweets (:func:`tokenize`'s output):
        the ``num_words - 2`` most frequent words, ties in the order first seen. Prefer
        :meth:`train`, which reads raw texts in Rust."""
        counts: Counter[str] = Counter()
        for tokens in tokenized:
            counts.update(tokens)
        return cls.from_words([w for w, _ in counts.most_common(num_words - 2)], steps=steps)

    # -- files ------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The whole pipeline as ``tokenizer.json`` holds it."""
        return self._tokenizer.to_str(pretty=True)

    @classmethod
    def from_json(cls, payload: str) -> TweetTokenizer:
        try:
            tokenizer = Tokenizer.from_str(payload)
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise ValueError(f"not a tokenizers JSON file: {str(exc)[:200]}") from exc
        return cls(tokenizer)

    def save(self, path: Path) -> Path:
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_file(cls, path: Path) -> TweetTokenizer:
        return cls.from_json(path.read_text(encoding="utf-8"))

    # -- encoding ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of ids, padding and out-of-vocabulary included (the embedding's input dim)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    @property
    def hf(self) -> Tokenizer:
        """The Hugging Face tokenizer itself."""
        return self._tokenizer

    def tokens(self, text: str) -> list[str]:
        """The tokens ``text`` is cut into (unknown ones as ``[UNK]``)."""
        return list(self._tokenizer.encode(_valid(text), add_special_tokens=False).tokens)

    def encode_text(self, text: str, config: TextConfig) -> list[int]:
        """Token ids of one tweet, cut to ``config.maxlen``; never empty."""
        try:
            ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        except TypeError:  # a lone surrogate: tokenizers takes only valid UTF-8
            ids = self._tokenizer.encode(_valid(text), add_special_tokens=False).ids
        return _cut(ids, config.maxlen, config.truncating)

    def encode_batch(self, texts: Sequence[str], config: TextConfig) -> list[list[int]]:
        """:meth:`encode_text` of every tweet, in one Rust call that releases the GIL."""
        try:
            encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        except TypeError:
            encodings = self._tokenizer.encode_batch_fast(
                [_valid(t) for t in texts], add_special_tokens=False
            )
        maxlen, side = config.maxlen, config.truncating
        return [_cut(e.ids, maxlen, side) for e in encodings]

    def encode(self, tokens: Sequence[str], maxlen: int, truncating: Side = "post") -> list[int]:
        """Ids of already tokenized words (word-level lookup, no normalisation), cut."""
        lookup = self._tokenizer.token_to_id
        return _cut([lookup(t) if t not in _SPECIAL else None for t in tokens], maxlen, truncating)


def _cut(ids: Sequence[int | None], maxlen: int, truncating: Side) -> list[int]:
    out = [OOV_ID if i is None else i for i in ids] or [OOV_ID]
    if len(out) > maxlen:
        out = out[:maxlen] if truncating == "post" else out[-maxlen:]
    return out
