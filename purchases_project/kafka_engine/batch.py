"""One batch in the engine: its messages decoded once, written in chunks, counted once.

Each message becomes an `Item` that records what became of it: decoded (or refused by
`decode`), written (the handler's outcome), dead-lettered or left (the policy's `fate`),
cut off behind a run of invalid events that stopped the engine, or dropped because its
partition was revoked before it was handled (its new owner reads it again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic

from confluent_kafka import Message

from purchases_project.kafka_engine.contract import (
    Event,
    Handler,
    InvalidMessage,
    Outcome,
    Retryable,
    Status,
    invalid,
)
from purchases_project.kafka_engine.dead_letters import DeadLetter, request_id_of
from purchases_project.kafka_engine.observe import PROCESSED, PROCESSING_SECONDS
from purchases_project.kafka_messages import Partition, offset_of, partition_of

logger = logging.getLogger("purchases_project.kafka_engine")

DEAD_LETTERED, EARLIER, LEFT = "dead_lettered", "earlier", "left"


@dataclass(slots=True, eq=False)
class Item(Generic[Event]):
    message: Message
    partition: Partition
    offset: int
    event: Event | None = None
    outcome: Outcome | None = None
    letter: DeadLetter | None = None
    fate: str | None = None  # of a refused event: DEAD_LETTERED, EARLIER (by a previous process) or LEFT
    cut: bool = False
    dropped: bool = False

    @property
    def active(self) -> bool:
        return not (self.cut or self.dropped)

    @property
    def done(self) -> bool:
        if self.outcome is None:
            return False
        return self.fate is not None or not self.outcome.refused


@dataclass(eq=False)
class Batch(Generic[Event]):
    items: list[Item[Event]]
    started: float = field(default_factory=time.monotonic)
    commit: dict[Partition, int] = field(default_factory=dict)  # next offsets, set by the policy
    capped: set[Partition] = field(default_factory=set)  # partitions whose run passed `cap`
    cap: int = 0
    marks: dict[Partition, int | None] = field(default_factory=dict)  # the dead-letter policy's, to save

    def active(self) -> Iterable[Item[Event]]:
        return (item for item in self.items if item.active)

    def refused(self) -> list[Item[Event]]:
        return [i for i in self.active() if i.outcome is not None and i.outcome.refused and i.fate is None]

    def drop(self, partitions: set[Partition]) -> int:
        """Partitions revoked mid-batch: what is not yet handled there is left to the new owner."""
        dropped = 0
        for item in self.items:
            if item.partition in partitions and item.active and not item.done:
                item.dropped = True
                dropped += 1
        for partition in partitions:  # never committed here, even if assigned here again
            self.commit.pop(partition, None)
        self.capped -= partitions
        return dropped


def decoded(handler: Handler[Event], messages: list[Message]) -> Batch[Event]:
    items: list[Item[Event]] = []
    for message in messages:
        item: Item[Event] = Item(message, partition_of(message), offset_of(message))
        try:
            item.event = handler.decode(message)
        except InvalidMessage as exc:
            item.outcome = invalid(str(exc))
        items.append(item)
    return Batch(items)


class ChunkedWriter(Generic[Event]):
    """Writes a batch's events through the handler, at most `chunk` per call. A call that runs
    out of its time budget halves `chunk` for the retry (one transaction shorter than the
    budget beats one that never fits); a batch written whole doubles it back. What a call
    wrote keeps its outcome, so a retry writes only the rest."""

    def __init__(self, handler: Handler[Event], *, max_chunk: int, min_chunk: int):
        self.handler = handler
        self.max_chunk, self.min_chunk = max_chunk, min_chunk
        self.chunk = max_chunk

    def write(self, batch: Batch[Event], deadline: float) -> None:
        # Items without an outcome are the ones `decode` accepted: each holds its event.
        pending = [i for i in batch.active() if i.outcome is None and i.event is not None]
        while pending:
            chunk, pending = pending[: self.chunk], pending[self.chunk :]
            events = [item.event for item in chunk if item.event is not None]
            try:
                outcomes = self.handler.write(events, timeout_s=max(deadline - time.monotonic(), 0.001))
            except Retryable as exc:
                if exc.timed_out:
                    self.chunk = max(self.min_chunk, self.chunk // 2)
                raise
            if len(outcomes) != len(chunk):
                raise RuntimeError(f"the handler answered {len(outcomes)} outcomes for {len(chunk)} events")
            for item, outcome in zip(chunk, outcomes, strict=True):
                item.outcome = outcome
        self.chunk = min(self.max_chunk, self.chunk * 2)


def counted(batch: Batch[Event]) -> dict[str, int]:
    """Count and log one outcome per event the batch handled; returns the counts."""
    counts: dict[str, int] = {}
    elapsed = time.monotonic() - batch.started
    for item in batch.active():
        if item.outcome is None:
            continue
        label = item.fate if item.outcome.refused else item.outcome.status.value
        if label is None or label == EARLIER:
            continue
        counts[label] = counts.get(label, 0) + 1
        if item.outcome.refused:
            _log_refused(item, label)
    for label, count in counts.items():
        if label != LEFT:
            PROCESSED.labels(label).inc(count)
            for _ in range(count):
                PROCESSING_SECONDS.observe(elapsed)
    return counts


def _log_refused(item: Item[Event], label: str) -> None:
    outcome = item.outcome
    assert outcome is not None, "only events with an outcome are logged"
    level = logging.ERROR if outcome.status is Status.CONFLICT else logging.WARNING
    what = "dead-lettered an event" if label == DEAD_LETTERED else "left an event that is still invalid"
    detail = f" ({outcome.detail})" if outcome.detail else ""
    logger.log(
        level,
        "%s: %s%s",
        what,
        outcome.reason,
        detail,
        extra={
            "request_id": request_id_of(item.message),
            "partition": item.partition[1],
            "offset": item.offset,
        },
    )
