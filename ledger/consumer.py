"""The purchase consumer: Kafka topic `purchases` into MongoDB, exactly once per purchase.

Lifecycle: `PurchaseConsumer.run()` joins the consumer group and loops until
`stop()` is called (the management command calls it on the first SIGTERM or
SIGINT). Each round takes a batch, dead-letters the events it cannot decode or
validate, stores the rest in one transaction (ledger.services), and only then
commits the next offsets. While MongoDB is unreachable it holds the batch,
pauses its partitions and keeps polling (so it keeps its group membership and
its lag metric stays live) while it retries with backoff. `finally` closes the
Kafka clients and the database connection.
"""

import json
import logging
import random
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import PyMongoError

from ledger import db, services
from purchases_project.events import InvalidPurchase, PurchaseEvent

logger = logging.getLogger(__name__)
KAFKA_LOGGER = logging.getLogger("kafka")

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
BATCH_SIZE = Histogram(
    "kafka_consumer_batch_size",
    "Events per batch taken from the broker",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
LAG = Gauge(
    "kafka_consumer_lag",
    "High watermark minus committed offset, per assigned partition",
    ["topic", "partition"],
)


class TooManyInvalidEvents(Exception):
    """A run of invalid events longer than the cap: something upstream is broken."""


class ShutdownTimeout(Exception):
    """The database stayed unreachable past the shutdown deadline; nothing was committed."""


@dataclass
class ConsumerSettings:
    bootstrap_servers: str
    topic: str
    group: str
    dlq_topic: str
    batch_size: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    dlq_max_consecutive: int
    shutdown_timeout_s: float
    batch_wait_s: float = 0.02
    poll_timeout_s: float = 1.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    statistics_interval_ms: int = 1000
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_django(cls, **overrides) -> "ConsumerSettings":
        from django.conf import settings

        values = dict(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            topic=settings.KAFKA_TOPIC,
            group=settings.KAFKA_CONSUMER_GROUP,
            dlq_topic=settings.KAFKA_DLQ_TOPIC,
            batch_size=settings.KAFKA_BATCH_SIZE,
            session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=settings.KAFKA_HEARTBEAT_INTERVAL_MS,
            max_poll_interval_ms=settings.KAFKA_MAX_POLL_INTERVAL_MS,
            dlq_max_consecutive=settings.KAFKA_DLQ_MAX_CONSECUTIVE,
            shutdown_timeout_s=settings.CONSUMER_SHUTDOWN_TIMEOUT_S,
            batch_wait_s=settings.KAFKA_BATCH_WAIT_MS / 1000,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def dead_letter_headers(message: Message, reason: str) -> list[tuple[str, bytes]]:
    """The original headers plus where the event came from and why it was set aside."""
    kept = [(k, v) for k, v in (message.headers() or []) if not k.startswith("dlq-")]
    return [
        *kept,
        ("dlq-reason", reason.encode()),
        ("dlq-topic", message.topic().encode()),
        ("dlq-partition", str(message.partition()).encode()),
        ("dlq-offset", str(message.offset()).encode()),
    ]


def request_id_of(message: Message) -> str | None:
    for key, value in message.headers() or []:
        if key == "x-request-id" and value:
            return value.decode(errors="replace")
    return None


class PurchaseConsumer:
    def __init__(self, config: ConsumerSettings):
        self.config = config
        self._stopping = False
        self._stop_requested_at: float | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._invalid_run = 0
        # Where the current run of invalid events began, per partition: commits stop there
        # until a valid event ends the run, so a consumer stopped by the cap restarts there.
        self._invalid_run_start: dict[tuple[str, int], int] = {}
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None

    # -- lifecycle -------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Warm shutdown: finish (write and commit) the batch in hand, then leave."""
        if not self._stopping:
            self._stopping = True
            self._stop_requested_at = time.monotonic()

    def _kafka_config(self) -> dict:
        c = self.config
        return {
            "bootstrap.servers": c.bootstrap_servers,
            "logger": KAFKA_LOGGER,  # librdkafka's own logs, in our log format
            "group.id": c.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": c.session_timeout_ms,
            "heartbeat.interval.ms": c.heartbeat_interval_ms,
            "max.poll.interval.ms": c.max_poll_interval_ms,
            "statistics.interval.ms": c.statistics_interval_ms,
            "stats_cb": self._on_stats,
            "error_cb": self._on_error,
            **c.extra,
        }

    def run(self) -> None:
        db.connect()
        self._consumer = Consumer(self._kafka_config())
        self._dlq = Producer(
            {
                "bootstrap.servers": self.config.bootstrap_servers,
                "logger": KAFKA_LOGGER,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "partitioner": "murmur2_random",
                "allow.auto.create.topics": False,
            }
        )
        self._consumer.subscribe(
            [self.config.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            while not self._stopping:
                if messages := self._next_batch():
                    self._handle_batch(messages)
        finally:
            self._close()

    def _next_batch(self) -> list[Message]:
        """Wait for one event, then take what arrives within `batch_wait_s`, up to the batch size.

        A plain consume(batch_size, timeout) would hold a lone purchase until the batch
        filled or the timeout ran out; this bounds the added delay while a busy topic
        still gives full batches.
        """
        first = self._consumer.consume(num_messages=1, timeout=self.config.poll_timeout_s)
        if not first or self.config.batch_size == 1:
            return first
        rest = self._consumer.consume(
            num_messages=self.config.batch_size - 1, timeout=self.config.batch_wait_s
        )
        return first + rest

    def _close(self) -> None:
        if self._dlq is not None:
            self._dlq.flush(5)
        if self._consumer is not None:
            self._consumer.close()  # leaves the group at once, so partitions move without waiting
        for topic, partition in list(self._assigned):
            self._forget_partition(topic, partition)
        db.close()

    # -- one batch -------------------------------------------------------

    def _handle_batch(self, messages: list[Message]) -> None:
        started = time.monotonic()
        BATCH_SIZE.observe(len(messages))
        events: list[tuple[PurchaseEvent, Message]] = []
        invalid: list[tuple[Message, str]] = []
        handled: list[Message] = []
        cap_reached = False
        for message in messages:
            if message.error():
                self._log_kafka_error(message.error())
                continue
            try:
                event = PurchaseEvent.from_message(message.value())
            except InvalidPurchase as exc:
                self._invalid_run += 1
                if self._invalid_run > self.config.dlq_max_consecutive:
                    cap_reached = True
                    break
                self._invalid_run_start.setdefault((message.topic(), message.partition()), message.offset())
                invalid.append((message, str(exc)))
            else:
                self._invalid_run = 0
                self._invalid_run_start.clear()
                events.append((event, message))
            handled.append(message)

        self._persist(events, invalid, messages)
        self._commit(handled)
        elapsed = time.monotonic() - started
        for _ in range(len(events) + len(invalid)):
            PROCESSING_SECONDS.observe(elapsed)
        if cap_reached:
            raise TooManyInvalidEvents(
                f"more than {self.config.dlq_max_consecutive} invalid events in a row; "
                "committed up to the first of them and stopped. Fix the producer, then "
                "restart (or move the offsets past them on purpose)."
            )

    def _persist(self, events, invalid, messages) -> None:
        """Dead-letter and store until both succeed; hold the batch while the database is away."""
        backoff = self.config.backoff_initial_s
        dead_lettered = False
        failed_once = False
        while True:
            try:
                if invalid and not dead_lettered:
                    self._dead_letter(invalid)
                    dead_lettered = True
                result = services.purchases_record(events=[e for e, _ in events]) if events else None
                break
            except (PyMongoError, KafkaException) as exc:
                if not failed_once:
                    failed_once = True
                    PROCESSED.labels("failed").inc(len(events))
                    logger.warning(
                        "could not store a batch of %d events, holding it and retrying: %s",
                        len(events),
                        exc,
                    )
                self._wait_while_holding(messages, backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)
        if failed_once:
            logger.info("stored the held batch of %d events", len(events))
        if result is not None:
            PROCESSED.labels("stored").inc(result.stored)
            PROCESSED.labels("duplicate").inc(result.duplicates)
            for event, message in events:
                new = event.purchase_id in result.stored_ids
                logger.info(
                    "stored purchase %s" if new else "purchase %s was stored before",
                    event.purchase_id,
                    extra={
                        "request_id": request_id_of(message),
                        "purchase_id": event.purchase_id,
                        "userid": event.userid,
                        "partition": message.partition(),
                        "offset": message.offset(),
                    },
                )
        if invalid:
            PROCESSED.labels("dead_lettered").inc(len(invalid))
            for message, reason in invalid:
                logger.warning(
                    "dead-lettered an event: %s",
                    reason,
                    extra={
                        "request_id": request_id_of(message),
                        "partition": message.partition(),
                        "offset": message.offset(),
                    },
                )

    def _dead_letter(self, invalid: list[tuple[Message, str]]) -> None:
        for message, reason in invalid:
            self._dlq.produce(
                self.config.dlq_topic,
                key=message.key(),
                value=message.value(),
                headers=dead_letter_headers(message, reason),
            )
        if self._dlq.flush(10) > 0:
            raise KafkaException(
                KafkaError(KafkaError._MSG_TIMED_OUT, "dead-letter topic did not acknowledge")
            )

    def _wait_while_holding(self, messages: list[Message], seconds: float) -> None:
        """Sleep with the partitions paused, polling so the group keeps this member."""
        if self._stopping and self._stop_requested_at is not None:
            if time.monotonic() - self._stop_requested_at > self.config.shutdown_timeout_s:
                raise ShutdownTimeout(
                    f"the database stayed unreachable for {self.config.shutdown_timeout_s:.0f}s "
                    "after shutdown was asked; exiting without committing the batch in hand"
                )
        paused = [TopicPartition(t, p) for t, p in self._assigned]
        if paused:
            self._consumer.pause(paused)
        deadline = time.monotonic() + seconds * (0.5 + random.random() / 2)
        try:
            while time.monotonic() < deadline:
                message = self._consumer.poll(min(0.2, max(0.0, deadline - time.monotonic())))
                if message is not None and not message.error():
                    # A partition assigned during the outage delivered: put it back for later.
                    tp = TopicPartition(message.topic(), message.partition(), message.offset())
                    self._consumer.pause([tp])
                    self._consumer.seek(tp)
        finally:
            resume = [TopicPartition(t, p) for t, p in self._assigned]
            if resume:
                self._consumer.resume(resume)

    def _commit(self, handled: list[Message]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        for message in handled:
            key = (message.topic(), message.partition())
            next_offsets[key] = max(next_offsets.get(key, -1), message.offset() + 1)
        for key, start in self._invalid_run_start.items():
            if key in next_offsets:
                next_offsets[key] = min(next_offsets[key], start)
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items() if (t, p) in self._assigned]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The events are stored; after a rebalance their new owner reads them again
            # and finds them already there.
            logger.warning("commit failed, the events will be redelivered and deduplicated: %s", exc)

    # -- callbacks (run inside consume/poll) -------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        logger.info("assigned partitions %s", sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        for tp in partitions:
            self._forget_partition(tp.topic, tp.partition)
        logger.info("revoked partitions %s", sorted(tp.partition for tp in partitions))

    def _forget_partition(self, topic: str, partition: int) -> None:
        self._assigned.discard((topic, partition))
        self._invalid_run_start.pop((topic, partition), None)
        try:
            LAG.remove(topic, str(partition))
        except KeyError:
            pass

    def _on_stats(self, stats_json: str) -> None:
        """Lag from the client's statistics, which are fed by Fetch responses (exact here)."""
        stats = json.loads(stats_json)
        for topic, topic_stats in stats.get("topics", {}).items():
            for partition_key, p in topic_stats.get("partitions", {}).items():
                partition = int(partition_key)
                if (topic, partition) not in self._assigned:
                    continue
                high, committed = p.get("hi_offset", -1), p.get("committed_offset", -1)
                if high < 0:
                    continue
                if committed < 0:
                    committed = max(p.get("lo_offset", 0), 0)
                LAG.labels(topic, str(partition)).set(max(high - committed, 0))

    def _on_error(self, error: KafkaError) -> None:
        self._log_kafka_error(error)

    @staticmethod
    def _log_kafka_error(error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        level = logging.ERROR if error.fatal() else logging.WARNING
        logger.log(level, "kafka: %s", error)
