"""Typed views of Kafka messages, shared by every client.

confluent-kafka's one `Message` class also carries produce reports and errors, so
its types say that a message's topic, partition and offset may be missing and
that its headers may be a dict. A message a consumer hands over without an error
always has all three, and its headers are a list of (key, value) pairs (values
are bytes, or None for a header without one). These helpers state that once.
"""

from typing import cast

from confluent_kafka import Message

# (topic, partition)
Partition = tuple[str, int]
# The list form of headers that Producer.produce accepts.
Headers = list[tuple[str, str | bytes | None]]


def partition_of(message: Message) -> Partition:
    topic, partition = message.topic(), message.partition()
    assert topic is not None and partition is not None, "a consumed message has a topic and a partition"
    return topic, partition


def offset_of(message: Message) -> int:
    offset = message.offset()
    assert offset is not None, "a consumed message has an offset"
    return offset


def header_pairs(message: Message) -> list[tuple[str, bytes | None]]:
    """A consumed message's headers (none: an empty list)."""
    headers = message.headers() or []
    assert isinstance(headers, list), "a consumed message's headers are a list of pairs"
    # Only a message built to be produced can hold str values; a consumed one holds bytes.
    return cast(list[tuple[str, bytes | None]], headers)
