"""The storefront's Kafka producer: the only module here that imports confluent_kafka.

Lifecycle: one `Producer` per process (`purchases_project.per_process`), made when a web
worker starts or on the first publish, never in a parent before a fork (librdkafka's threads
do not survive one), replaced when it breaks. A daemon thread polls it for delivery reports.
Each publish waits for its own report, up to `KAFKA_PUBLISH_TIMEOUT_S`.
`close_producer()` flushes what is in flight when a worker has stopped serving (registered in
`storefront.apps`).
"""

import logging
import threading
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from django.conf import settings
from prometheus_client import Counter, Histogram

from purchases_project import kafka_config, request_id
from purchases_project.events import PurchaseEvent
from purchases_project.kafka_messages import Headers
from purchases_project.per_process import PerProcess

logger = logging.getLogger(__name__)

PUBLISHED = Counter("purchases_published_total", "Purchases offered to the broker, by outcome", ["outcome"])
PUBLISH_SECONDS = Histogram(
    "purchase_publish_seconds",
    "Time from produce() to the broker's acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
)
for _outcome in ("acked", "failed", "rejected"):
    PUBLISHED.labels(_outcome)


# After this many failed publishes in a row a fresh producer (and producer id) is made.
MAX_FAILURES_IN_A_ROW = 3


class PublishError(Exception):
    """The broker did not acknowledge the event in time; the purchase may or may not be stored."""


def producer_config() -> dict:
    timeout_ms = int(settings.KAFKA_PUBLISH_TIMEOUT_S * 1000)
    return kafka_config.producer(
        **{
            "linger.ms": settings.KAFKA_LINGER_MS,
            # A little above the request's own wait, so a late delivery still reports.
            "message.timeout.ms": timeout_ms + 500,
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
            "reconnect.backoff.max.ms": 1000,
        }
    )


class _Delivery:
    """One event's delivery report. A lock taken at creation and released by the report: the
    request thread waits by acquiring it again (cheaper than an Event's condition variable)."""

    __slots__ = ("_pending", "error")

    def __init__(self):
        self._pending = threading.Lock()
        self._pending.acquire()
        self.error = None

    def __call__(self, err, msg):  # runs on the poll thread: keep it tiny
        self.error = err
        self._pending.release()

    def wait(self, timeout: float) -> bool:
        return self._pending.acquire(timeout=timeout)


class PurchaseProducer:
    def __init__(self, config: dict):
        # An idempotent producer can be left unusable: a fatal error, or a broker that
        # lost its producer state (it then retries an unknown producer id until every
        # message times out). get_producer() replaces a broken one.
        self.broken = False
        self._failures_in_a_row = 0
        self._producer = Producer({**config, "error_cb": self._on_error})
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.broken = True
            logger.error("kafka producer fatal error, it will be replaced: %s", error)

    def _poll(self) -> None:
        while not self._closed.is_set():
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # raised for fatal errors
                self._on_error(exc.args[0])
                if not self.broken:
                    logger.warning("kafka producer: %s", exc)
                self._closed.wait(0.05)

    def publish(self, topic: str, event: PurchaseEvent, timeout: float) -> None:
        delivery = _Delivery()
        headers: Headers = [("content-type", b"application/json")]
        if rid := request_id.get():
            headers.append(("x-request-id", rid.encode()))
        started = time.perf_counter()
        try:
            self._producer.produce(
                topic,
                key=event.userid.encode(),
                value=event.as_message(),
                headers=headers,
                on_delivery=delivery,
            )
        except (BufferError, KafkaException) as exc:
            if isinstance(exc, KafkaException) and exc.args[0].code() == KafkaError._FATAL:
                self.broken = True
            PUBLISHED.labels("rejected").inc()
            raise PublishError(f"broker rejected the event: {exc}") from exc
        if not delivery.wait(timeout):
            self._failed()
            raise PublishError("broker did not acknowledge in time")
        if delivery.error is not None:
            self._failed()
            raise PublishError(f"broker refused the event: {delivery.error}")
        self._failures_in_a_row = 0
        PUBLISHED.labels("acked").inc()
        PUBLISH_SECONDS.observe(time.perf_counter() - started)

    def _failed(self) -> None:
        PUBLISHED.labels("failed").inc()
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= MAX_FAILURES_IN_A_ROW and not self.broken:
            self.broken = True
            logger.warning(
                "%d publishes failed in a row; the producer will be replaced", self._failures_in_a_row
            )

    def close(self, timeout: float = 5.0) -> int:
        """Deliver what is in flight; returns how many events are still undelivered."""
        remaining = self._producer.flush(timeout)
        self._closed.set()
        self._poller.join(1.0)
        return remaining


def _new_producer() -> PurchaseProducer:
    return PurchaseProducer(producer_config())


# A broken producer delivers nothing more: dropped at once, without waiting to flush.
_producer = PerProcess(_new_producer, usable=lambda p: not p.broken, discard=lambda p: p.close(timeout=0))


def get_producer() -> PurchaseProducer:
    return _producer.get()


def close_producer() -> None:
    producer = _producer.take()
    if producer is not None:
        remaining = producer.close()
        if remaining:
            logger.warning("producer closed with %d undelivered events", remaining)
