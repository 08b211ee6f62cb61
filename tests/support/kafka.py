"""Reading the topics of the broker under test, and the consumer group's committed offsets.

Readers use a group of their own that never commits, so they never disturb the
consumers under test; every read has a deadline. They are configured like the services'
clients (purchases_project/kafka_config.py), so the settings' security (TLS, SASL) reaches
them too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Message, TopicPartition

from purchases_project import kafka_config

POLL_S = 0.5


def _reader(bootstrap: str) -> Consumer:
    return Consumer(
        {
            **kafka_config.common(bootstrap_servers=bootstrap),
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def partitions(bootstrap: str, topic: str) -> list[int]:
    reader = _reader(bootstrap)
    try:
        return sorted(reader.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        reader.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's next offset: where a read of what comes next starts."""
    reader = _reader(bootstrap)
    try:
        found = sorted(reader.list_topics(topic, timeout=10).topics[topic].partitions)
        return {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in found}
    finally:
        reader.close()


def read(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Message]], bool],
    start: dict[int, int] | None = None,
    timeout: float = 15.0,
) -> list[Message]:
    """The messages of `topic` (from `start` offsets, else from the beginning of every
    partition) read until `until(messages)` holds or `timeout` passes."""
    reader = _reader(bootstrap)
    found: list[Message] = []
    try:
        if start is None:
            listed = reader.list_topics(topic, timeout=10).topics[topic].partitions
            start = {p: 0 for p in listed}
        reader.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])
        deadline = time.monotonic() + timeout
        while not until(found) and time.monotonic() < deadline:
            message = reader.poll(POLL_S)
            if message is not None and not message.error():
                found.append(message)
    finally:
        reader.close()
    return found


def read_count(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[Message]:
    """The first `count` messages of `topic` (fewer if they are not there within `timeout`)."""
    return read(bootstrap, topic, until=lambda found: len(found) >= count, timeout=timeout)


def find_event(
    bootstrap: str, topic: str, purchase_id: str, *, start: dict[int, int] | None = None, timeout: float = 15
) -> Message:
    """The event of `purchase_id` on `topic`; an AssertionError when it is not there in time."""

    def has_it(found: list[Message]) -> bool:
        return bool(found) and purchase_id_of(found[-1]) == purchase_id

    found = read(bootstrap, topic, until=has_it, start=start, timeout=timeout)
    if not has_it(found):
        raise AssertionError(f"no event with purchase_id {purchase_id} on {topic} within {timeout:.0f}s")
    return found[-1]


def purchase_id_of(message: Message) -> str | None:
    try:
        event = json.loads(message.value())
    except ValueError:
        return None
    return event.get("purchase_id") if isinstance(event, dict) else None


def committed(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """The group's committed offset of each partition (negative: none yet)."""
    consumer = Consumer({**kafka_config.common(bootstrap_servers=bootstrap), "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()
