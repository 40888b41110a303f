"""The worker's settings: one frozen object, built once at start.

Every field is a command-line flag (``--max-batch-size``) and an environment variable with the
same name (``SENTISTREAM_MAX_BATCH_SIZE``); a flag wins over the variable, the variable over the
default. The exception is the SASL password (a secret): a variable or a file, never a flag. The
connection fields come from :class:`~sentistream.connection.KafkaConnection`, which every
command that talks to Kafka shares. docs/configuration.md is this class, as a table (a test
keeps the two equal).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from sentistream.connection import ENV_PREFIX, KafkaConnection
from sentistream.worker.core.fields import parse_paths

__all__ = [
    "ENV_PREFIX",
    "KAFKA_CLIENTS",
    "KafkaClientName",
    "ProcessingGuarantee",
    "WorkerSettings",
]

ProcessingGuarantee = Literal["at-least-once", "exactly-once"]
KafkaClientName = Literal["kafka-python", "confluent"]
#: Every ``--kafka-client``, the default first.
KAFKA_CLIENTS: tuple[KafkaClientName, ...] = get_args(KafkaClientName)


class WorkerSettings(KafkaConnection):
    """The connection settings (:class:`KafkaConnection`, shared with every command that talks
    to Kafka) and the worker's own."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    input_topic: str = Field("tweets", description="Topic of raw tweets to classify.")
    output_topic: str = Field("tweet-labels", description="Topic the labelled results go to.")
    dlq_topic: str = Field(
        "tweets.dlq", description="Dead-letter topic for records that cannot be classified."
    )
    group_id: str = Field(
        "sentistream", description="Consumer group; workers in one group share the partitions."
    )
    model_dir: Path = Field(
        Path("models/sentistream-lstm"),
        description="Model folder (model.onnx, tokenizer.json, manifest.json).",
    )
    model_check_interval_s: float = Field(
        5.0,
        ge=0,
        description="How often to look for a new model in model-dir (its manifest changed; a "
        "symlink switched): it is loaded, verified and warmed up aside, then swapped in "
        "between two micro-batches (0: only on SIGHUP).",
    )
    shadow_model_dir: str = Field(
        "",
        description="A second model folder that labels the same micro-batches off the primary's "
        "path, into shadow-topic, beside the primary's label (empty: no shadow).",
    )
    shadow_fraction: float = Field(
        1.0, gt=0, le=1, description="Share of the labelled tweets the shadow model sees."
    )
    shadow_topic: str = Field(
        "", description="Topic of the shadow model's labels (empty: <output-topic>.shadow)."
    )
    input_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="json: an object with `text` (and optional `id`) or a JSON string; "
        "text: the value is the tweet; auto: JSON when it looks like JSON, else text.",
    )
    text_field: str = Field(
        "text",
        description="Where a JSON value's tweet text is: dotted paths, the first present wins "
        "(e.g. `extended_tweet.full_text,full_text,text` for Twitter API v1.1, `data.text` for "
        "v2). A Kafka Connect envelope's `payload` is looked through.",
    )
    id_field: str = Field(
        "id",
        description="Where a JSON value's tweet id is: dotted paths, the first present wins "
        "(`id_str,id` for v1.1, `data.id` for v2); kept exactly as given.",
    )
    keep_fields: str = Field(
        "",
        description="Input fields copied into each label, comma-separated dotted paths (e.g. "
        "`author_id,lang,created_at`); strings, numbers, booleans or null.",
    )
    output_text: bool = Field(
        True, description="Write the tweet's text into the label (--no-output-text: leave it out)."
    )
    output_format: Literal["json", "connect-json"] = Field(
        "json",
        description="json: the worker's label object; connect-json: Kafka Connect's JSON with "
        "schema (struct sentistream.Label), for a Connect sink such as JDBC.",
    )
    output_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="Compression of the label and dead-letter batches the worker writes."
    )
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed",
        description="read_committed: tweets of an aborted upstream transaction are never "
        "labelled; read_uncommitted: read every record as soon as it is written.",
    )
    max_batch_size: int = Field(
        256,
        ge=1,
        le=4096,
        description="A micro-batch closes at this many records (or at max-wait-ms).",
    )
    max_wait_ms: int = Field(
        10,
        ge=0,
        le=60_000,
        description="A micro-batch closes this long after its first record at the latest.",
    )
    fetch_max_wait_ms: int = Field(
        500,
        ge=1,
        le=10_000,
        description="How long the broker may hold a fetch that finds no new tweet; a tweet "
        "that arrives ends the wait at once, so this costs no latency while tweets flow.",
    )
    fetch_min_bytes: int = Field(
        1,
        ge=1,
        le=1_048_576,
        description="The broker answers a fetch once this many bytes are there (or "
        "fetch-max-wait-ms passed): 1 answers at once; more means fewer fetches under a "
        "trickle of tweets, each waiting up to fetch-max-wait-ms.",
    )
    length_bucket_size: int = Field(
        32,
        ge=0,
        description="Inside a micro-batch, tweets of similar length run together in ONNX "
        "Runtime calls of this many rows (0: one call per micro-batch).",
    )
    pipeline_depth: int = Field(
        2,
        ge=0,
        le=16,
        description="Micro-batches handed to ONNX Runtime on a thread of its own while the "
        "loop polls, decodes and publishes; their records count as in flight (0 or 1: no "
        "pipelining, inference on the loop's thread; exactly-once always runs 1).",
    )
    max_record_bytes: int = Field(
        16_384, ge=1, description="Larger input values are dead-lettered as `oversized`."
    )
    max_in_flight: int = Field(
        0,
        ge=0,
        description="Most records taken from Kafka and not yet acknowledged by it (open batch "
        "plus produced); at this many the worker pauses fetching, and resumes at half "
        "(0: (3 + pipeline-depth) x max-batch-size, 4 x without pipelining).",
    )
    kafka_client: KafkaClientName = Field(
        "kafka-python",
        description="The Kafka client library: kafka-python (pure Python, installed with the "
        "worker) or confluent (confluent-kafka, librdkafka; `pip install "
        "'sentistream[confluent]'`). Same settings, metrics and guarantees.",
    )
    processing_guarantee: ProcessingGuarantee = Field(
        "at-least-once",
        description="at-least-once: offsets committed after the labels are acknowledged (a "
        "crash repeats work); exactly-once: each micro-batch's labels, dead letters and offsets "
        "in one Kafka transaction (readers must use isolation.level=read_committed).",
    )
    transactional_id: str = Field(
        "",
        description="exactly-once: this worker's transactional.id, stable across its restarts "
        "and unique among the workers (e.g. the pod name); empty: sentistream-GROUP-HOSTNAME.",
    )
    transaction_timeout_s: float = Field(
        30.0,
        gt=0,
        le=900,
        description="exactly-once: longest any transactional call may take (past it the "
        "worker exits for its supervisor to restart it); Kafka aborts a transaction left open "
        "twice this long.",
    )
    max_unacked_age_s: float = Field(
        60.0,
        gt=0,
        description="/healthz fails when a record taken from Kafka has waited this long for "
        "its label to be acknowledged (a producer that stopped delivering).",
    )
    create_topics: bool = Field(
        False,
        description="Create a missing input, output or dead-letter topic at start (3, 3 and 1 "
        "partitions) instead of refusing to start.",
    )
    metrics_host: str = Field("0.0.0.0", description="Address of the HTTP server.")
    metrics_port: int = Field(
        8000, ge=0, le=65535, description="Port for /metrics, /healthz, /readyz (0: any free)."
    )
    ort_threads: int = Field(
        1,
        ge=0,
        description="ONNX Runtime intra-op threads (0: one per core). One leaves the other "
        "core to kafka-python's threads; run one worker per core to use more.",
    )
    shutdown_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Longest a SIGTERM shutdown takes: finish the batch in hand, wait for its "
        "deliveries, commit, leave the group.",
    )
    health_stall_s: float = Field(
        30.0, gt=0, description="/healthz fails when the loop made no progress for this long."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )

    @field_validator("text_field", "id_field")
    @classmethod
    def _at_least_one_path(cls, value: str) -> str:
        if not parse_paths(value):
            raise ValueError("needs at least one dotted path, e.g. `text` or `data.text`")
        return value

    @property
    def exactly_once(self) -> bool:
        """Whether this worker runs exactly-once (the one place the setting's text is read)."""
        return self.processing_guarantee == "exactly-once"

    def effective_transactional_id(self) -> str:
        """The transactional.id in use: the setting, or one from the group and host name."""
        return self.transactional_id or f"sentistream-{self.group_id}-{socket.gethostname()}"
