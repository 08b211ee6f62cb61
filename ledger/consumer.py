"""The purchase handler that the Kafka engine runs for `consume_purchases` (decision 0008).

`PurchaseWriter.decode` decodes and validates one event with the shared rules (an
invalid one is refused with the reason); `write` stores a list of events in one
transaction (ledger.services) and answers one outcome per event: stored, duplicate,
or `purchase_id conflict` when the id is already stored for another userid (the
engine dead-letters it and logs an ERROR). A database error is `Retryable`: the
engine holds the batch, retries with backoff and halves the events per transaction
after one that ran out of time. Dead letters, their cap and marks, offsets and
backoff are the engine's (purchases_project.kafka_engine); `DeadLetterMarks` keeps
the marks in MongoDB. `purchase_consumer` puts the pieces together from the settings.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymongo
from confluent_kafka import Message
from django.conf import settings
from pymongo.errors import OperationFailure, PyMongoError

from ledger import db, documents, selectors, services
from purchases_project import kafka_config
from purchases_project.events import InvalidPurchase, PurchaseEvent
from purchases_project.kafka_engine import (
    DUPLICATE,
    STORED,
    DeadLetterPolicy,
    DeadLetterSender,
    Engine,
    EngineSettings,
    InvalidMessage,
    Outcome,
    Retryable,
    conflict,
    dead_letter_producer_config,
)
from purchases_project.kafka_engine.dead_letters import request_id_of
from purchases_project.kafka_messages import Partition, offset_of, partition_of

logger = logging.getLogger(__name__)

CONFLICT_REASON = "purchase_id conflict"


class DocumentRefused(Exception):
    """The database's schema refused a purchase that the event rules accepted: the two disagree."""


@dataclass(frozen=True, slots=True)
class Received:
    event: PurchaseEvent
    request_id: str | None
    partition: int
    offset: int


def _engine_error(exc: PyMongoError) -> Exception:
    """A schema refusal stops the consumer loudly; any other database error is retried."""
    if isinstance(exc, OperationFailure) and _validation_failed(exc):
        return DocumentRefused(f"the purchases' schema refused a document: {exc}")
    return Retryable(f"{type(exc).__name__}: {exc}", timed_out=exc.timeout)


def _validation_failed(exc: OperationFailure) -> bool:
    errors = (exc.details or {}).get("writeErrors", [])
    return exc.code == documents.VALIDATION_FAILED or any(
        e.get("code") == documents.VALIDATION_FAILED for e in errors
    )


class PurchaseWriter:
    def __init__(self) -> None:
        self._collections_ready = False

    def open(self) -> None:
        db.connect()

    def close(self) -> None:
        db.close()

    def decode(self, message: Message) -> Received:
        try:
            event = PurchaseEvent.from_message(message.value())
        except InvalidPurchase as exc:
            raise InvalidMessage(str(exc)) from None
        return Received(event, request_id_of(message), partition_of(message)[1], offset_of(message))

    def write(self, events: Sequence[Received], *, timeout_s: float) -> list[Outcome]:
        try:
            if not self._collections_ready:
                self._collections_ensure(timeout_s)
            result = services.purchases_record(events=[r.event for r in events], timeout_s=timeout_s)
        except PyMongoError as exc:
            raise _engine_error(exc) from exc
        outcomes = []
        for received, recorded in zip(events, result.recorded, strict=True):
            purchase_id = received.event.purchase_id
            if recorded is services.Recorded.CONFLICT:
                outcomes.append(
                    conflict(CONFLICT_REASON, f"purchase {purchase_id} is stored for another userid")
                )
                continue
            new = recorded is services.Recorded.STORED
            outcomes.append(STORED if new else DUPLICATE)
            logger.info(
                "stored purchase %s" if new else "purchase %s was stored before",
                purchase_id,
                extra={
                    "request_id": received.request_id,
                    "partition": received.partition,
                    "offset": received.offset,
                    "purchase_id": purchase_id,
                    "userid": received.event.userid,
                },
            )
        return outcomes

    def _collections_ensure(self, timeout_s: float) -> None:
        """The unique purchase_id index is what keeps two consumers racing for one event from
        both storing it: never write without it, even where `ensure_indexes` did not run."""
        with pymongo.timeout(timeout_s):
            for warning in services.indexes_ensure():
                logger.warning(warning)
        self._collections_ready = True


class DeadLetterMarks:
    """The engine's `MarkStore` in MongoDB, one document per group and partition."""

    def __init__(self, group: str):
        self.group = group

    def get(self, partitions: list[Partition], *, timeout_s: float) -> dict[Partition, int]:
        keys = {documents.mark_key(self.group, *p): p for p in partitions}
        try:
            found = selectors.dead_letter_marks_get(keys=list(keys), timeout_s=timeout_s)
        except PyMongoError as exc:
            raise _engine_error(exc) from exc
        return {keys[key]: offset for key, offset in found.items()}

    def put(self, marks: dict[Partition, int | None], *, timeout_s: float) -> None:
        by_key = {documents.mark_key(self.group, *p): offset for p, offset in marks.items()}
        try:
            services.dead_letter_marks_put(marks=by_key, timeout_s=timeout_s)
        except PyMongoError as exc:
            raise _engine_error(exc) from exc


def purchase_consumer(
    *,
    topic: str | None = None,
    group: str | None = None,
    batch_size: int | None = None,
    dlq_topic: str | None = None,
    dlq_max_consecutive: int | None = None,
    kafka: dict[str, Any] | None = None,
    **engine: Any,
) -> Engine[Received]:
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
    policy = DeadLetterPolicy(
        sender=DeadLetterSender(
            topic=dlq_topic or settings.KAFKA_DLQ_TOPIC,
            producer_config=kafka_config.producer(**dead_letter_producer_config(config)),
        ),
        max_consecutive=dlq_max_consecutive or settings.KAFKA_DLQ_MAX_CONSECUTIVE,
        marks=DeadLetterMarks(group),
    )
    return Engine(config, PurchaseWriter(), policy)
