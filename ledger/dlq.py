"""Replaying the dead-letter topic after a fix, on the consumer's engine.

Lifecycle: `dead_letter_replayer(...)` builds an `Engine` that reads the dead-letter
topic in its own consumer group (`purchase-dlq-replay`) from where it last stopped,
and stops once nothing new arrives for `idle_timeout_s` (counted from the group's
assignment) or after `max_messages`. `ReplayWriter.decode` re-validates each event;
`write` re-publishes the valid ones to the purchase topic with their original key
and headers and waits for the broker's acknowledgement (a retryable error until it
comes). The engine's `LeaveRefused` policy leaves the still-invalid ones: per
partition it commits only up to the first event left, so a later run, after a
further fix, sees that one again (and re-sends the valid ones after it, which is
safe because the consumer dedupes on `purchase_id`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from purchases_project import kafka_config
from purchases_project.events import InvalidPurchase, PurchaseEvent
from purchases_project.kafka_engine import (
    STORED,
    Engine,
    EngineSettings,
    InvalidMessage,
    LeaveRefused,
    Outcome,
    Retryable,
)
from purchases_project.kafka_engine.dead_letters import replayed_headers

REPLAY_GROUP = "purchase-dlq-replay"


@dataclass
class ReplayResult:
    replayed: int = 0
    left: int = 0
    first_left: dict[int, int] = field(default_factory=dict)  # partition -> offset


class ReplayWriter:
    def __init__(self, *, topic: str, producer_factory: Callable[[dict[str, Any]], Any] = Producer):
        self.topic = topic
        self._factory = producer_factory
        self._producer: Any = None

    def open(self) -> None:
        self._producer = self._factory(kafka_config.producer())

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)

    def decode(self, message: Message) -> Message:
        try:
            PurchaseEvent.from_message(message.value())
        except InvalidPurchase as exc:
            raise InvalidMessage(str(exc)) from None
        return message

    def write(self, events: Sequence[Message], *, timeout_s: float) -> list[Outcome]:
        failed: list[KafkaError] = []

        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append(err)

        try:
            for message in events:
                self._producer.produce(
                    self.topic,
                    key=message.key(),
                    value=message.value(),
                    headers=replayed_headers(message),
                    on_delivery=report,
                )
        except (BufferError, KafkaException) as exc:
            raise Retryable(f"could not re-publish to {self.topic}: {exc}") from exc
        if self._producer.flush(max(timeout_s, 0)) > 0 or failed:
            # Re-sending on the retry is safe: the consumer dedupes on purchase_id.
            reason = failed[0] if failed else "not acknowledged in time"
            raise Retryable(
                f"{self.topic} did not acknowledge the replayed events: {reason}", timed_out=not failed
            )
        return [STORED] * len(events)


def dead_letter_replayer(
    *, dlq_topic: str, topic: str, group: str = REPLAY_GROUP, idle_timeout_s: float = 5.0, max_messages: int
) -> Engine[Message]:
    config = EngineSettings(
        topic=dlq_topic,
        kafka=kafka_config.consumer(group=group),
        batch_size=500,
        poll_timeout_s=0.5,
        stop_when_idle_s=idle_timeout_s,
        max_messages=max_messages,
        statistics_interval_ms=0,
    )
    return Engine(config, ReplayWriter(topic=topic), LeaveRefused())


def replay_result(engine: Engine[Message]) -> ReplayResult:
    policy = engine.policy
    assert isinstance(policy, LeaveRefused), "a replayer leaves what is still invalid"
    return ReplayResult(
        replayed=engine.counts["stored"],
        left=engine.counts["left"],
        first_left={partition: offset for (_, partition), offset in policy.first_left.items()},
    )
