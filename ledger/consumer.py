"""The purchase handling: decode, validate, dead-letter or store, count.

`PurchaseBatches` is the `BatchHandler` that the generic Kafka loop
(purchases_project.kafka_engine) runs for `consume_purchases`. Per batch:
`prepare` decodes and validates each event once and counts runs of invalid
events per partition; `write` (retried by the engine while the database or the
dead-letter topic is away) dead-letters the invalid ones and stores the valid
ones in one transaction (ledger.services); `finish` counts one outcome per event
and says which offsets to commit.

More than `dlq_max_consecutive` invalid events in a row on one partition stop
the consumer: offsets on that partition stay at the run's first event and
nothing more of it is dead-lettered. A dead-letter mark in MongoDB, written with
each batch, records how far an open run is dead-lettered, so a restarted
consumer never dead-letters an event twice.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message
from django.conf import settings
from prometheus_client import Counter, Histogram
from pymongo.errors import PyMongoError

from ledger import db, selectors, services
from ledger.dead_letters import DeadLetter, DeadLetterSender, DeadLetterUnavailable, request_id_of
from ledger.documents import DeadLetterMark
from purchases_project import kafka_config
from purchases_project.events import InvalidPurchase, PurchaseEvent
from purchases_project.kafka_engine import Engine, EngineSettings, Handled
from purchases_project.kafka_messages import Partition, offset_of, partition_of

logger = logging.getLogger(__name__)

PROCESSED = Counter(
    "kafka_messages_processed_total", "Events handled by the consumer, by outcome", ["status"]
)
for _status in ("stored", "duplicate", "dead_lettered", "failed"):
    PROCESSED.labels(_status)
PROCESSING_SECONDS = Histogram(
    "kafka_message_processing_seconds",
    "Time from an event's batch arriving to the event being durably handled",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


class TooManyInvalidEvents(Exception):
    """A run of invalid events longer than the cap: something upstream is broken."""


@dataclass
class Batch:
    events: list[tuple[PurchaseEvent, Message]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    commit: dict[Partition, int] = field(default_factory=dict)
    capped: set[Partition] = field(default_factory=set)
    marks: dict[Partition, int | None] = field(default_factory=dict)
    result: services.RecordResult | None = None
    written: set[str] = field(default_factory=set)  # purchase_ids an earlier attempt wrote
    stored: set[str] = field(default_factory=set)  # of those, the ones that were new


MAX_CHUNK = 1000
MIN_CHUNK = 25


class PurchaseBatches:
    retryable = (PyMongoError, DeadLetterUnavailable)

    def __init__(
        self, *, group: str, dlq_topic: str, dlq_max_consecutive: int, producer_config: dict[str, Any]
    ):
        self.group, self.dlq_topic, self.cap = group, dlq_topic, dlq_max_consecutive
        self._sender = DeadLetterSender(topic=dlq_topic, producer_config=producer_config)
        self._runs: dict[Partition, list[int]] = {}  # partition -> [first offset, length] of its open run
        self._marks: dict[Partition, int] = {}  # partition -> next offset not yet dead-lettered
        self._chunk = MAX_CHUNK  # events per transaction: halved when one outlives its budget

    def open(self) -> None:
        db.connect()
        self._sender.open()

    def close(self) -> None:
        self._sender.close()
        db.close()

    def partitions_revoked(self, partitions: list[Partition]) -> None:
        for partition in partitions:
            self._runs.pop(partition, None)
            self._marks.pop(partition, None)

    def prepare(self, messages: list[Message]) -> Batch:
        batch = Batch()
        for message in messages:
            partition, offset = partition_of(message), offset_of(message)
            if partition in batch.capped:
                continue
            try:
                batch.events.append((PurchaseEvent.from_message(message.value()), message))
            except InvalidPurchase as exc:
                run = self._runs.setdefault(partition, [offset, 0])
                run[1] += 1
                if run[1] > self.cap:
                    batch.capped.add(partition)
                    batch.commit[partition] = run[0]
                    continue
                batch.dead_letters.append(DeadLetter(message, str(exc)))
            else:
                if self._runs.pop(partition, None) is not None:
                    batch.marks[partition] = None
            batch.commit[partition] = offset + 1
        for partition, (first, _) in self._runs.items():
            if partition in batch.commit:
                batch.commit[partition] = first  # the run may yet trip the cap: restart at its start
        return batch

    def write(self, batch: Batch, budget_s: float) -> None:
        deadline = time.monotonic() + budget_s
        self._load_marks(batch, budget_s)
        self._dead_letter(batch, deadline)
        keys = {DeadLetterMark.key_for(self.group, *p): offset for p, offset in batch.marks.items()}
        left = [event for event, _ in batch.events if event.purchase_id not in batch.written]
        # Transactions of at most `_chunk` events, each whole on its own (purchases and their
        # summary increments); the dead-letter marks go with the last. A transaction that
        # outlives the attempt's budget (a slow database) halves the size for the retry, so a
        # held batch makes progress instead of timing out whole again and again.
        chunks = [left[i : i + self._chunk] for i in range(0, len(left), self._chunk)] or [[]]
        for number, chunk in enumerate(chunks, 1):
            try:
                result = services.purchases_record(
                    events=chunk,
                    dead_letter_marks=keys if number == len(chunks) else None,
                    timeout_s=max(deadline - time.monotonic(), 0.001),
                )
            except PyMongoError as exc:
                if exc.timeout:
                    self._chunk = max(MIN_CHUNK, self._chunk // 2)
                raise
            batch.written.update(event.purchase_id for event in chunk)
            batch.stored.update(result.stored_ids)
        self._chunk = min(MAX_CHUNK, self._chunk * 2)
        batch.result = services.RecordResult(
            stored_ids=frozenset(batch.stored), duplicates=len(batch.events) - len(batch.stored)
        )
        for partition, offset in batch.marks.items():
            if offset is None:
                self._marks.pop(partition, None)
            else:
                self._marks[partition] = offset

    def _load_marks(self, batch: Batch, budget_s: float) -> None:
        unknown = {partition_of(m.message) for m in batch.dead_letters} - set(self._marks)
        if unknown:
            keys = {DeadLetterMark.key_for(self.group, *p): p for p in unknown}
            found = selectors.dead_letter_marks_get(keys=list(keys), timeout_s=budget_s / 4)
            self._marks.update({p: found.get(key, -1) for key, p in keys.items()})

    def _dead_letter(self, batch: Batch, deadline: float) -> None:
        waiting = []
        for letter in batch.dead_letters:
            message = letter.message
            partition, offset = partition_of(message), offset_of(message)
            if offset < self._marks.get(partition, -1):
                letter.before = True
            if letter.delivered or letter.before:
                continue
            waiting.append(letter)
            if partition in self._runs:  # still open after this batch: remember how far it went
                batch.marks[partition] = max(batch.marks.get(partition) or 0, offset + 1)
        self._sender.send(waiting, deadline)

    def finish(self, batch: Batch, started: float) -> Handled:
        result = batch.result
        assert result is not None, "the engine calls finish only after write stored the batch"
        PROCESSED.labels("stored").inc(result.stored)
        PROCESSED.labels("duplicate").inc(result.duplicates)
        new_letters = [letter for letter in batch.dead_letters if not letter.before]
        PROCESSED.labels("dead_lettered").inc(len(new_letters))
        elapsed = time.monotonic() - started
        for _ in range(len(batch.events) + len(new_letters)):
            PROCESSING_SECONDS.observe(elapsed)
        for event, message in batch.events:
            new = event.purchase_id in result.stored_ids
            logger.info(
                "stored purchase %s" if new else "purchase %s was stored before",
                event.purchase_id,
                extra=_fields(message, purchase_id=event.purchase_id, userid=event.userid),
            )
        for letter in new_letters:
            logger.warning("dead-lettered an event: %s", letter.reason, extra=_fields(letter.message))
        stop = None
        if batch.capped:
            stop = TooManyInvalidEvents(
                f"more than {self.cap} invalid events in a row on partitions "
                f"{sorted(p for _, p in batch.capped)}; committed up to the first of them and stopped. "
                "Fix the producer, then restart (or move the offsets past them on purpose)."
            )
        return Handled(commit=batch.commit, stop=stop)

    def give_up(self, batch: Batch) -> None:
        PROCESSED.labels("failed").inc(len(batch.events) + len(batch.dead_letters))


def purchase_consumer(
    *,
    topic: str | None = None,
    group: str | None = None,
    batch_size: int | None = None,
    dlq_topic: str | None = None,
    dlq_max_consecutive: int | None = None,
    kafka: dict[str, Any] | None = None,
    **engine: Any,
) -> Engine[PurchaseBatches]:
    """The purchase consumer from the settings; arguments (the command's options) override them."""
    group = group or settings.KAFKA_CONSUMER_GROUP
    config = EngineSettings(
        topic=topic or settings.KAFKA_TOPIC,
        kafka=kafka_config.consumer(group=group, **(kafka or {})),
        batch_size=batch_size or settings.KAFKA_BATCH_SIZE,
        batch_wait_s=settings.KAFKA_BATCH_WAIT_MS / 1000,
        shutdown_timeout_s=settings.CONSUMER_SHUTDOWN_TIMEOUT_S,
        liveness_file=settings.CONSUMER_LIVENESS_FILE,
    )
    for name, value in engine.items():
        setattr(config, name, value)
    # A dead letter fails within one attempt's budget, so the batch is held, never dropped.
    dead_letter_config: dict[str, Any] = {
        "linger.ms": 5,
        "message.timeout.ms": int(config.attempt_budget_s * 1000),
    }
    handler = PurchaseBatches(
        group=group,
        dlq_topic=dlq_topic or settings.KAFKA_DLQ_TOPIC,
        dlq_max_consecutive=dlq_max_consecutive or settings.KAFKA_DLQ_MAX_CONSECUTIVE,
        producer_config=kafka_config.producer(**dead_letter_config),
    )
    return Engine(config, handler)


def _fields(message: Message, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id_of(message),
        "partition": message.partition(),
        "offset": message.offset(),
        **extra,
    }
