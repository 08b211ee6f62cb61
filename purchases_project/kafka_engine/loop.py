"""A Kafka consumer loop that knows nothing about what it consumes.

The engine polls, has the `Handler` decode each message once, lets its `Policy`
plan the batch (runs of invalid events, the cap, the offsets to commit), writes the
events through the handler in chunks, lets the policy settle the refused ones
(dead letters, marks), and commits the next offsets, only after all of that is done.
When a step raises `Retryable`, the engine holds the batch: it pauses its partitions
and keeps polling (so the group keeps the member and the statistics keep the lag
metric live) while tenacity waits with exponential backoff between attempts. Each
attempt gets a time budget derived from `max.poll.interval.ms`, so no attempt can
make the member miss a poll. Partitions revoked while a batch is held are dropped
from it: neither written nor committed here (even if assigned here again), their new
owner reads them again. Which messages continue their partitions, and where each
partition stands, is `partitions.Partitions`'s to say.

Lifecycle: `run()` subscribes and loops until `stop()` (a warm shutdown: finish the
batch in hand; while holding, give up after `shutdown_timeout_s` and raise
`ShutdownTimeout` without committing) or, for a job, until idle for `stop_when_idle_s`.
`finally` closes the handler, the policy and the consumer (it leaves the group at once).

Liveness: the loop touches `liveness_file` (at most once a second) whenever it
polls, holding included; a frozen loop leaves the file to age. Decision: 0008.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Generic

import tenacity
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from purchases_project.kafka_engine import observe
from purchases_project.kafka_engine.batch import Batch, ChunkedWriter, counted, decoded
from purchases_project.kafka_engine.contract import (
    EngineSettings,
    Event,
    Handler,
    Retryable,
    ShutdownTimeout,
    TooManyInvalidEvents,
)
from purchases_project.kafka_engine.observe import Liveness
from purchases_project.kafka_engine.partitions import Partitions
from purchases_project.kafka_engine.policy import Policy
from purchases_project.kafka_messages import Partition

logger = logging.getLogger(__name__)


class Engine(Generic[Event]):
    def __init__(
        self,
        config: EngineSettings,
        handler: Handler[Event],
        policy: Policy,
        *,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ):
        self.config, self.handler, self.policy = config, handler, policy
        self.counts: Counter[str] = Counter()
        self.max_poll_gap_s = 0.0
        self._factory = consumer_factory
        self._writer = ChunkedWriter(handler, max_chunk=config.max_chunk, min_chunk=config.min_chunk)
        self._stopping = False
        self._stop_requested_at: float | None = None
        self._partitions = Partitions()
        self._consumer: Any = None
        self._batch: Batch[Event] | None = None
        self._liveness = Liveness(config.liveness_file)
        self._last_poll_end: float | None = None
        self._seen = 0
        self._assigned_at: float | None = None
        self._last_message_at = 0.0

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._stop_requested_at = time.monotonic()

    def run(self) -> None:
        self._liveness.touch()
        self._consumer = self._factory(
            {
                **self.config.kafka,
                "statistics.interval.ms": self.config.statistics_interval_ms,
                "stats_cb": lambda stats: observe.report_lag(stats, self._partitions.assigned),
                "error_cb": observe.log_kafka_error,
            }
        )
        self._partitions.consumer = self._consumer
        try:
            self.handler.open()
            self.policy.open()
            self._consumer.subscribe(
                [self.config.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            started = time.monotonic()
            while not self._stopping and not self._done(started):
                if messages := self._next_batch():
                    self._process(messages)
                    # Idle is time without work: a batch that took long to write is not idleness.
                    self._last_message_at = time.monotonic()
        finally:
            self._close()

    def _done(self, started: float) -> bool:
        """For a job: stop once idle (counted from the assignment) or after `max_messages`."""
        config = self.config
        if config.max_messages is not None and self._seen >= config.max_messages:
            return True
        if config.stop_when_idle_s is None:
            return False
        if self._assigned_at is None:
            if time.monotonic() - started > config.join_timeout_s:
                raise KafkaException(
                    f"no partitions of {config.topic} assigned in {config.join_timeout_s:.0f}s"
                )
            return False
        return time.monotonic() - max(self._assigned_at, self._last_message_at) >= config.stop_when_idle_s

    # -- polling -----------------------------------------------------------

    def _consume(self, num_messages: int, timeout: float) -> list[Message]:
        started = time.monotonic()
        if self._last_poll_end is not None:
            gap = started - self._last_poll_end
            if gap > self.max_poll_gap_s:
                self.max_poll_gap_s = gap
                observe.POLL_GAP.set(gap)
        try:
            return self._consumer.consume(num_messages=num_messages, timeout=timeout)
        finally:
            self._last_poll_end = time.monotonic()
            self._liveness.touch()

    def _next_batch(self) -> list[Message]:
        """One message, then what arrives within `batch_wait_s` (a lone event waits no longer)."""
        size = self.config.batch_size
        if self.config.max_messages is not None:
            size = min(size, self.config.max_messages - self._seen)
        first = self._consume(1, self.config.poll_timeout_s)
        if first and size > 1:
            first += self._consume(size - 1, self.config.batch_wait_s)
        if messages := self._partitions.take(first):
            self._seen += len(messages)
            self._last_message_at = time.monotonic()
        return messages

    # -- one batch -----------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        observe.BATCH_SIZE.observe(len(messages))
        batch = self._batch = decoded(self.handler, messages)
        self.policy.plan(batch)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Retryable),
            wait=tenacity.wait_random_exponential(
                multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s
            ),
            sleep=self._hold,
            before_sleep=lambda state: self._on_failed_attempt(state, len(messages)),
            reraise=True,
        )
        try:
            retrying(self._attempt, batch)
        except ShutdownTimeout:
            observe.PROCESSED.labels("failed").inc(sum(1 for item in batch.active()))
            raise
        finally:
            observe.HELD.set(0)
            self._batch = None
        if retrying.statistics.get("attempt_number", 1) > 1 and (written := sum(1 for _ in batch.active())):
            logger.info("wrote the held batch of %d messages", written)
        self._commit(batch.commit)
        self.counts.update(counted(batch))
        if batch.capped:
            raise TooManyInvalidEvents(
                f"more than {batch.cap} invalid events in a row on partitions "
                f"{sorted(p for _, p in batch.capped)}; committed up to the first of them and stopped. "
                "Fix the producer, then restart (or move the offsets past them on purpose)."
            )

    def _attempt(self, batch: Batch[Event]) -> None:
        deadline = time.monotonic() + self._budget()
        self._writer.write(batch, deadline)
        self.policy.settle(batch, deadline)

    def _budget(self) -> float:
        budget = self.config.attempt_budget_s
        if self._stopping:  # a warm shutdown's deadline bounds the attempt too
            budget = max(min(budget, self._shutdown_left()), 0.001)
        return budget

    def _shutdown_left(self) -> float:
        assert self._stop_requested_at is not None, "stop() sets it before the engine is stopping"
        return self._stop_requested_at + self.config.shutdown_timeout_s - time.monotonic()

    def _on_failed_attempt(self, state: tenacity.RetryCallState, size: int) -> None:
        observe.RETRIES.inc()
        observe.HELD.set(size)
        if state.attempt_number == 1:
            assert state.outcome is not None, "tenacity calls before_sleep with the failed attempt's outcome"
            logger.warning(
                "could not write a batch of %d messages, holding it and retrying: %s",
                size,
                state.outcome.exception(),
            )

    def _hold(self, seconds: float) -> None:
        """Wait with the partitions paused, polling so the group keeps this member."""
        if self._stopping:
            left = self._shutdown_left()
            if left <= 0:
                raise ShutdownTimeout(
                    f"the batch could not be written for {self.config.shutdown_timeout_s:.0f}s "
                    "after shutdown was asked; exiting without committing the batch in hand"
                )
            seconds = min(seconds, left)
        deadline = time.monotonic() + seconds
        partitions = self._partitions
        try:
            while (left := deadline - time.monotonic()) > 0:
                partitions.pause(partitions.assigned)  # also what was assigned since the hold began
                for message in self._consume(1, min(0.2, left)):
                    if not message.error():  # assigned and fetched before it was paused
                        partitions.put_back(message)
        finally:
            partitions.resume(partitions.paused & partitions.assigned)

    def _commit(self, next_offsets: dict[Partition, int]) -> None:
        assigned = self._partitions.assigned
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items() if (t, p) in assigned]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The batch is written; after a rebalance its new owner reads it again and finds it there.
            logger.warning("commit failed, the messages will be redelivered: %s", exc)

    def _close(self) -> None:
        try:
            self.policy.close()
            self.handler.close()
        finally:
            if self._consumer is not None:
                self._consumer.close()  # leaves the group at once, so partitions move without waiting
            self._partitions.paused.clear()  # nothing is paused in a closed consumer
            self._forget(list(self._partitions.assigned))

    # -- callbacks (run inside consume) -----------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._partitions.assign(partitions, timeout_s=self.config.attempt_budget_s)
        if self._assigned_at is None:
            self._assigned_at = time.monotonic()
        logger.info("assigned partitions %s", sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])
        logger.info("revoked partitions %s", sorted(tp.partition for tp in partitions))

    def _forget(self, partitions: list[Partition]) -> None:
        self.policy.revoked(partitions)
        self._partitions.revoke(partitions)
        if self._batch is not None and (dropped := self._batch.drop(set(partitions))):
            logger.info("left %d held messages of revoked partitions to their new owner", dropped)
        for topic, partition in partitions:
            try:
                observe.LAG.remove(topic, str(partition))
            except KeyError:
                pass
