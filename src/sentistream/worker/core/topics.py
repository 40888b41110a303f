"""The worker's topics must exist before it consumes: checked at start, pure decisions.

Without the check, a missing output or dead-letter topic shows up as kafka-python's 60 s
metadata timeout at the first send, and a missing input topic is either auto-created by the
broker with one partition (the worker reports ready and labels nothing) or never assigned.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["TOPIC_PARTITIONS", "TopicCheck", "check_topics"]

#: Partitions of topics the worker creates with ``--create-topics`` (as ``create-topics``).
TOPIC_PARTITIONS = {"input": 3, "output": 3, "dead-letter": 1}


@dataclass(frozen=True)
class TopicCheck:
    missing: dict[str, str]
    """role ("input", "output", "dead-letter") → name, of each topic that does not exist."""
    to_create: dict[str, int]
    """name → partitions, when creating was asked for."""
    error: str | None
    """Why the worker must not start, or None."""


def check_topics(
    existing: Collection[str],
    *,
    input_topic: str,
    output_topic: str,
    dlq_topic: str,
    bootstrap_servers: str,
    create: bool,
) -> TopicCheck:
    roles = {"input": input_topic, "output": output_topic, "dead-letter": dlq_topic}
    missing = {role: name for role, name in roles.items() if name not in existing}
    if not missing:
        return TopicCheck({}, {}, None)
    if create:
        to_create = {name: TOPIC_PARTITIONS[role] for role, name in missing.items()}
        return TopicCheck(missing, to_create, None)
    named = ", ".join(f"{role} topic {name!r}" for role, name in missing.items())
    verb = "does" if len(missing) == 1 else "do"
    command = (
        f"sentistream create-topics --bootstrap-servers {bootstrap_servers} "
        f"--input-topic {input_topic} --output-topic {output_topic} --dlq-topic {dlq_topic}"
    )
    error = (
        f"{named} {verb} not exist on {bootstrap_servers}; create them with `{command}` "
        "or start the worker with --create-topics (on a cluster with ACLs, a topic the "
        "worker's principal may not Describe looks missing too)"
    )
    return TopicCheck(missing, {}, error)
