"""The dead-letter header scheme and the sender that the engine's dead-letter policy uses.

A dead letter keeps the event's key, value and headers, and adds why it was set
aside (`dlq-reason`) and where it came from (`dlq-topic`, `dlq-partition`,
`dlq-offset`). A replayed event drops the `dlq-` headers and gains
`dlq-replayed-from` (`<partition>:<offset>` in the dead-letter topic).

`DeadLetterSender` owns a dead-letter producer (created by `open()`, flushed by
`close()`): it sends each dead letter once, waits for the topic's acknowledgements
until a deadline, and raises `DeadLetterUnavailable` (after an ERROR log and a
count) when they do not all come, so the engine holds its batch.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter

from purchases_project import request_id
from purchases_project.kafka_engine.contract import Retryable
from purchases_project.kafka_messages import Headers, header_pairs, offset_of, partition_of

logger = logging.getLogger(__name__)

FAILURES = Counter(
    "kafka_dead_letter_failures_total", "Attempts to dead-letter events that the dead-letter topic refused"
)

PREFIX = "dlq-"
REASON = "dlq-reason"
REPLAYED_FROM = "dlq-replayed-from"


def original_headers(message: Message) -> Headers:
    """The message's headers without any of this scheme's."""
    return [(k, v) for k, v in header_pairs(message) if not k.startswith(PREFIX)]


def dead_letter_headers(message: Message, reason: str) -> Headers:
    """The original headers plus where the event came from and why it was set aside."""
    topic, partition = partition_of(message)
    return [
        *original_headers(message),
        (REASON, reason.encode()),
        ("dlq-topic", topic.encode()),
        ("dlq-partition", str(partition).encode()),
        ("dlq-offset", str(offset_of(message)).encode()),
    ]


def replayed_headers(dead_letter: Message) -> Headers:
    """The headers an event replayed from `dead_letter` travels with."""
    origin = f"{dead_letter.partition()}:{dead_letter.offset()}".encode()
    return [*original_headers(dead_letter), (REPLAYED_FROM, origin)]


def request_id_of(message: Message) -> str | None:
    """The event's request id for the logs, when it is one the storefront would accept: anyone
    who can write to the topic chooses the header, and logs must not carry what it holds."""
    for key, value in header_pairs(message):
        if key == "x-request-id" and value:
            text = value.decode(errors="replace")
            return text if request_id.accepted(text) else None
    return None


class DeadLetterUnavailable(Retryable):
    """The dead-letter topic did not acknowledge; the batch is held, nothing is dropped."""


@dataclass
class DeadLetter:
    message: Message
    reason: str
    delivered: bool = False
    in_flight: bool = False


class DeadLetterSender:
    def __init__(
        self, *, topic: str, producer_config: dict[str, Any], producer_factory: Callable[..., Any] = Producer
    ):
        self.topic = topic
        self._config = producer_config
        self._factory = producer_factory
        self._producer: Any = None

    def open(self) -> None:
        self._producer = self._factory(self._config)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)

    def send(self, letters: list[DeadLetter], deadline: float) -> None:
        """Send the letters not yet acknowledged; raise DeadLetterUnavailable unless all are by `deadline`."""
        producer = self._producer
        assert producer is not None, "open() creates the producer before any batch is sent"
        if not letters:
            return
        errors: list[KafkaError | Exception] = []

        def reporter(letter: DeadLetter) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, msg: Message) -> None:
                letter.in_flight = False
                if err is None:
                    letter.delivered = True
                else:
                    errors.append(err)

            return report

        try:
            for letter in letters:
                if letter.delivered or letter.in_flight:  # an earlier attempt sent it: never twice
                    continue
                producer.produce(
                    self.topic,
                    key=letter.message.key(),
                    value=letter.message.value(),
                    headers=dead_letter_headers(letter.message, letter.reason),
                    on_delivery=reporter(letter),
                )
                letter.in_flight = True
        except (BufferError, KafkaException) as exc:
            errors.append(exc)
        producer.flush(max(deadline - time.monotonic(), 0))
        missing = sum(not letter.delivered for letter in letters)
        if missing:
            FAILURES.inc()
            logger.error(
                "could not dead-letter %d events to %s (is the topic there?), holding the batch: %s",
                missing,
                self.topic,
                errors[0] if errors else "not acknowledged in time",
            )
            raise DeadLetterUnavailable(f"{self.topic} did not acknowledge the dead letters")
