"""Replaying the dead-letter topic after a fix.

Lifecycle: `DeadLetterReplayer.run()` joins its own consumer group
(`purchase-dlq-replay`), reads the dead-letter topic from where it last
stopped until nothing new arrives for `idle_timeout_s` (counted from the
group's assignment), re-validates each event, re-publishes the valid ones to
the purchase topic with their original key and headers, and leaves the
still-invalid ones. Per partition it commits only the events it handled: up
to the first event it had to leave, so a later run, after a further fix, sees
that one again. Re-publishing is safe because the consumer dedupes on
`purchase_id`. `finally` closes both clients.
"""

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from ledger.dead_letters import replayed_headers
from purchases_project import kafka_config
from purchases_project.events import InvalidPurchase, PurchaseEvent

logger = logging.getLogger(__name__)

REPLAY_GROUP = "purchase-dlq-replay"
JOIN_TIMEOUT_S = 60.0


@dataclass
class ReplayResult:
    replayed: int = 0
    left: int = 0
    first_left: dict[int, int] = field(default_factory=dict)  # partition -> offset


class DeadLetterReplayer:
    def __init__(
        self,
        *,
        dlq_topic: str,
        topic: str,
        group: str = REPLAY_GROUP,
        idle_timeout_s: float = 5.0,
        max_messages: int = 1_000_000,
    ):
        self.dlq_topic, self.topic = dlq_topic, topic
        self.idle_timeout_s, self.max_messages = idle_timeout_s, max_messages
        self._consumer = Consumer(kafka_config.consumer(group=group))
        self._producer = Producer(kafka_config.producer())

    def run(self) -> ReplayResult:
        result = ReplayResult()
        seen = 0
        idle_since = 0.0
        try:
            assigned: list[float] = []
            self._consumer.subscribe(
                [self.dlq_topic], on_assign=lambda c, ps: assigned.append(time.monotonic())
            )
            started = time.monotonic()
            while seen < self.max_messages:
                # Idle time counts from the group's assignment, so a slow join (a busy
                # machine, a rebalance) is never taken for an empty dead-letter topic.
                if not assigned:
                    if time.monotonic() - started > JOIN_TIMEOUT_S:
                        raise KafkaException(
                            f"no partitions of {self.dlq_topic} assigned in {JOIN_TIMEOUT_S:.0f}s"
                        )
                elif time.monotonic() - max(assigned[0], idle_since) >= self.idle_timeout_s:
                    break
                messages = self._consumer.consume(
                    num_messages=min(500, self.max_messages - seen), timeout=0.5
                )
                messages = [m for m in messages if not m.error()]
                if not messages:
                    continue
                idle_since = time.monotonic()
                seen += len(messages)
                self._replay_batch(messages, result)
        finally:
            self._producer.flush(10)
            self._consumer.close()
        return result

    def _replay_batch(self, messages, result: ReplayResult) -> None:
        commit: dict[int, int] = {}
        for message in messages:
            partition = message.partition()
            try:
                PurchaseEvent.from_message(message.value())
            except InvalidPurchase as exc:
                result.left += 1
                result.first_left.setdefault(partition, message.offset())
                logger.warning(
                    "left a dead letter that is still invalid: %s",
                    exc,
                    extra={"partition": partition, "offset": message.offset()},
                )
                continue
            self._producer.produce(
                self.topic, key=message.key(), value=message.value(), headers=replayed_headers(message)
            )
            result.replayed += 1
            if partition not in result.first_left:
                commit[partition] = message.offset() + 1
        if self._producer.flush(30) > 0:
            raise KafkaException("the purchase topic did not acknowledge the replayed events")
        offsets = [TopicPartition(self.dlq_topic, p, o) for p, o in commit.items()]
        if offsets:
            self._consumer.commit(offsets=offsets, asynchronous=False)
