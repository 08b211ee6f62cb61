"""The partitions one member holds: which are assigned, which paused, and where the engine is in each.

The client keeps a position of its own, moved by what it hands over, by seeks, pauses and
rebalances. The engine keeps its own, the next offset it takes (arroyo's `tell()`),
starting at the committed offset when a partition is assigned, and checks every message
against it, so no offset is committed past a record the handler never saw:
- a message at the position is taken and moves it on; so is one before it (the client
  went back: the handler's writes are idempotent);
- a message past it (a gap), or an error that names a partition and an offset, ends
  that partition's part of the batch: the partition is sought back to the position and
  read again. A gap still there when read again is the log's own (a compacted topic, a
  transaction's markers): it is taken and logged. An error at one position
  `max_errors` times in a row stops the engine (`KafkaException`).
A pause seeks back to the position, so what the client fetched and the engine did not take
is read again after the pause (arroyo's pause does the same). A revoked partition is
resumed on the way out: librdkafka would keep it paused into its next assignment.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from purchases_project.kafka_engine import observe
from purchases_project.kafka_messages import Partition, offset_of, partition_of

logger = logging.getLogger("purchases_project.kafka_engine.loop")

# Errors that report what the client did, not a record it could not read.
_NOTICES = (KafkaError._PARTITION_EOF, KafkaError._AUTO_OFFSET_RESET)


class Partitions:
    def __init__(self, *, max_errors: int = 3):
        self.max_errors = max_errors
        self.consumer: Any = None
        self.assigned: set[Partition] = set()
        self.paused: set[Partition] = set()
        self._next: dict[Partition, int] = {}
        self._read_again: dict[Partition, int] = {}  # the position a gap sent a partition back to
        self._errors: Counter[tuple[Partition, int]] = Counter()

    # -- the group's side ------------------------------------------------------------

    def assign(self, partitions: list[TopicPartition], *, timeout_s: float) -> None:
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        try:  # where the assignment starts, so its first message is checked too
            for tp in self.consumer.committed(partitions, timeout=timeout_s):
                if tp.offset >= 0:
                    self._next[(tp.topic, tp.partition)] = tp.offset
        except KafkaException as exc:
            logger.warning("could not read the committed offsets of %s: %s", partitions, exc)

    def revoke(self, partitions: Iterable[Partition]) -> None:
        partitions = list(partitions)
        self.resume(partitions)
        for partition in partitions:
            self.assigned.discard(partition)
            self._next.pop(partition, None)
            self._read_again.pop(partition, None)

    # -- the engine's side -------------------------------------------------------------

    def pause(self, partitions: Iterable[Partition]) -> None:
        if new := sorted(p for p in partitions if p not in self.paused):
            self.consumer.pause([TopicPartition(t, p) for t, p in new])
            self.paused.update(new)
            for partition in new:
                if (position := self._next.get(partition)) is not None:
                    self.seek(partition, position)

    def put_back(self, message: Message) -> None:
        """A message delivered while its partition was (being) paused: read it again later."""
        partition = partition_of(message)
        self.pause([partition])
        position = self._next.get(partition)
        self.seek(partition, offset_of(message) if position is None else position)

    def resume(self, partitions: Iterable[Partition]) -> None:
        if these := [p for p in partitions if p in self.paused]:
            self.consumer.resume([TopicPartition(t, p) for t, p in these])
            self.paused.difference_update(these)

    def seek(self, partition: Partition, offset: int) -> None:
        if partition in self.assigned:
            self.consumer.seek(TopicPartition(*partition, offset))

    def take(self, messages: list[Message]) -> list[Message]:
        """The messages that continue their partitions. A partition whose part of the batch ends
        early is sought back to where it ended; what followed is read again."""
        taken: list[Message] = []
        rewind: dict[Partition, int] = {}
        for message in messages:
            error = message.error()
            partition = partition_of(message) if error is None else _erring_partition(message, error)
            if partition is None:
                assert error is not None, "a message without an error names its partition"
                observe.log_kafka_error(error)
            elif partition in rewind:
                continue
            elif error is not None:
                rewind[partition] = self._after_error(partition, offset_of(message), error)
            elif (again := self._advance(partition, offset_of(message))) is not None:
                rewind[partition] = again
            else:
                taken.append(message)
        for partition, offset in rewind.items():
            self.seek(partition, offset)
        return taken

    def _advance(self, partition: Partition, offset: int) -> int | None:
        """Move the position past `offset`; or, past a gap read only once, where to read again."""
        expected = self._next.get(partition)
        if expected is not None and offset > expected:
            if self._read_again.get(partition) != expected:
                self._read_again[partition] = expected
                logger.warning(
                    "partition %s: offset %d arrived where %d was next; reading again from there",
                    partition[1],
                    offset,
                    expected,
                )
                return expected
            logger.warning(
                "partition %s: offsets %d to %d are not in the log (read twice); going on",
                partition[1],
                expected,
                offset - 1,
            )
        self._next[partition] = offset + 1
        self._read_again.pop(partition, None)
        if expected is not None:
            self._errors.pop((partition, expected), None)
        return None

    def _after_error(self, partition: Partition, offset: int, error: KafkaError) -> int:
        position = self._next.get(partition, offset)
        self._errors[(partition, position)] += 1
        if self._errors[(partition, position)] >= self.max_errors:
            raise KafkaException(error)
        logger.warning(
            "partition %s: offset %d could not be read (%s); reading again from %d",
            partition[1],
            offset,
            error,
            position,
        )
        return position


def _erring_partition(message: Message, error: KafkaError) -> Partition | None:
    """The partition an error stops at; None for an error of the client, or a notice."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if error.code() in _NOTICES or topic is None or partition is None or partition < 0:
        return None
    return (topic, partition) if offset is not None and offset >= 0 else None
