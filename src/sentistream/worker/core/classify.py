"""decode → encode → infer for one micro-batch: a verdict per record, never an exception
about one record.

Each record's own handling (decoding, validation, tokenizing) is guarded: whatever it raises
becomes that record's :class:`InvalidMessage` (``internal_error`` with the exception's class
when it is not a known kind of bad input). Inference runs once per batch; if it fails, the
batch is split in halves until only the records at fault fail. Only the model itself failing
(:class:`ModelBroken`) escapes.

The three steps are separate methods so that inference can run on a thread of its own
(:mod:`sentistream.worker.core.pipeline`): :meth:`Classify.prepare` (decode and encode, on the
loop's thread), :meth:`Classify.infer` (the model, with the halving retry; any thread) and
:meth:`Classify.finish` (labels and the failure tracker, on the loop's thread, in order).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sentistream.worker.core.drift import DriftSignals
from sentistream.worker.core.fields import FieldMap
from sentistream.worker.core.messages import (
    InputFormat,
    InputRecord,
    InvalidMessage,
    Tweet,
    decode_record,
    internal_error,
)
from sentistream.worker.core.metrics import WorkerMetrics
from sentistream.worker.core.ports import Classifier, InferenceError, ModelBroken

__all__ = [
    "MAX_FAILED_BATCHES",
    "Classify",
    "FailureTracker",
    "Inferred",
    "Labelled",
    "PreparedBatch",
    "Verdict",
]

#: Batches in a row whose every record failed inference before the model is declared broken.
MAX_FAILED_BATCHES = 20


@dataclass(frozen=True)
class Labelled:
    tweet: Tweet
    label: str
    probabilities: dict[str, float]


Verdict = Labelled | InvalidMessage
Inferred = list[float] | InvalidMessage
"""One row's inference outcome: its probabilities, or why it failed."""


@dataclass(frozen=True)
class PreparedBatch:
    """A micro-batch decoded and encoded, awaiting inference: the records, the classifier
    that encoded them (the one that must infer them), a verdict per record already decided
    (None where inference decides), and for those the record's index, ids and tweet."""

    records: list[InputRecord]
    classifier: Classifier
    verdicts: list[Verdict | None]
    good: list[int]
    ids: list[list[int]]
    tweets: list[Tweet]

    def __len__(self) -> int:
        return len(self.records)


class FailureTracker:
    """Tells a broken model from bad records: every record of a batch failing on its own, or
    :data:`MAX_FAILED_BATCHES` batches in a row failing entirely (which catches a broken model
    under traffic light enough for batches of one)."""

    def __init__(self, limit: int = MAX_FAILED_BATCHES) -> None:
        self.limit = limit
        self.failed_in_a_row = 0

    def observe(self, rows: int, failed: int) -> None:
        if rows == 0:
            return
        if failed < rows:
            self.failed_in_a_row = 0
            return
        self.failed_in_a_row += 1
        if rows > 1 or self.failed_in_a_row >= self.limit:
            raise ModelBroken(
                f"inference failed for every record of {self.failed_in_a_row} batch(es) "
                f"in a row, the last of {rows} record(s)"
            )


class Classify:
    def __init__(
        self,
        classifier: Classifier,
        metrics: WorkerMetrics,
        *,
        input_format: InputFormat = "auto",
        fields: FieldMap | None = None,
        max_record_bytes: int = 16_384,
        drift: DriftSignals | None = None,
    ) -> None:
        self.classifier = classifier
        self.metrics = metrics
        self.input_format: InputFormat = input_format
        self.fields = fields or FieldMap()
        self.drift = drift
        self.max_record_bytes = max_record_bytes
        self.failures = FailureTracker()

    def __call__(self, records: Sequence[InputRecord]) -> list[Verdict]:
        """The three steps at once, on the caller's thread."""
        batch = self.prepare(records)
        return self.finish(batch, self.infer(batch))

    def prepare(self, records: Sequence[InputRecord]) -> PreparedBatch:
        """Decode each record (guarded per record), then encode the decoded texts in one call
        with the classifier in use now; the batch keeps that classifier, so a model swapped in
        later never sees its ids. If the batch's encoding raises, each text is encoded on its
        own, so only the records at fault become dead letters."""
        classifier = self.classifier
        verdicts: list[Verdict | None] = []
        good: list[int] = []
        tweets: list[Tweet] = []
        for index, record in enumerate(records):
            try:
                tweet = decode_record(record, self.input_format, self.max_record_bytes, self.fields)
            except InvalidMessage as error:
                verdicts.append(error)
                continue
            except Exception as exc:  # one record's fault: its dead letter
                verdicts.append(internal_error(exc, "decode"))
                continue
            verdicts.append(None)
            good.append(index)
            tweets.append(tweet)
        try:
            ids = classifier.encode_batch([tweet.text for tweet in tweets])
        except Exception:  # some text's fault: find it
            good, ids, tweets = self._encode_one_by_one(classifier, verdicts, good, tweets)
        return PreparedBatch(list(records), classifier, verdicts, good, ids, tweets)

    @staticmethod
    def _encode_one_by_one(
        classifier: Classifier,
        verdicts: list[Verdict | None],
        good: list[int],
        tweets: list[Tweet],
    ) -> tuple[list[int], list[list[int]], list[Tweet]]:
        """Encode each text alone; a text that raises becomes its record's dead letter."""
        kept: list[int] = []
        ids: list[list[int]] = []
        kept_tweets: list[Tweet] = []
        for index, tweet in zip(good, tweets, strict=True):
            try:
                row = classifier.encode(tweet.text)
            except InvalidMessage as error:
                verdicts[index] = error
                continue
            except Exception as exc:
                verdicts[index] = internal_error(exc, "decode")
                continue
            kept.append(index)
            ids.append(row)
            kept_tweets.append(tweet)
        return kept, ids, kept_tweets

    def infer(self, batch: PreparedBatch) -> list[Inferred]:
        """Run the batch's own classifier over its ids, splitting in halves around rows that
        fail. Touches nothing but the batch and the (thread-safe) metrics, so it may run on
        another thread than :meth:`prepare` and :meth:`finish`."""
        return self._infer_split(batch.classifier, batch.ids)

    def finish(self, batch: PreparedBatch, results: Sequence[Inferred]) -> list[Verdict]:
        """Probabilities → labels; raises :class:`ModelBroken` when the failure tracker says
        so. Call in the order the batches were prepared."""
        self.failures.observe(len(batch.ids), sum(isinstance(r, InvalidMessage) for r in results))
        verdicts = list(batch.verdicts)
        labels = batch.classifier.labels
        seen: list[list[int]] = []
        confidences: list[float] = []
        said: list[str] = []
        for index, ids, tweet, result in zip(
            batch.good, batch.ids, batch.tweets, results, strict=True
        ):
            if isinstance(result, InvalidMessage):
                verdicts[index] = result
                continue
            try:
                labelled = _labelled(tweet, labels, result)
            except Exception as exc:  # e.g. a row of the wrong width
                verdicts[index] = internal_error(exc, "label")
                continue
            verdicts[index] = labelled
            seen.append(ids)
            confidences.append(labelled.probabilities[labelled.label])
            said.append(labelled.label)
        if self.drift is not None:
            self.drift.observe(seen, confidences, said)
        return [v for v in verdicts if v is not None]

    def _infer_split(self, classifier: Classifier, ids: list[list[int]]) -> list[Inferred]:
        if not ids:
            return []
        started = time.perf_counter()
        try:
            probabilities = classifier.predict_ids(ids)
        except InferenceError as exc:
            if len(ids) == 1:
                return [InvalidMessage("inference_error", f"inference failed: {exc}")]
            middle = len(ids) // 2
            return self._infer_split(classifier, ids[:middle]) + self._infer_split(
                classifier, ids[middle:]
            )
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(ids))
        rows: list[list[float]] = probabilities.tolist()
        return list(rows)


def _labelled(tweet: Tweet, labels: Sequence[str], row: list[float]) -> Labelled:
    if len(row) != len(labels):
        raise ValueError(f"the model gave {len(row)} probabilities for {len(labels)} labels")
    best = max(range(len(row)), key=row.__getitem__)
    return Labelled(tweet, labels[best], dict(zip(labels, row, strict=True)))
