"""A Kafka consumer loop that knows nothing about what it consumes.

The engine polls, hands each batch to a `BatchHandler`, and commits the next
offsets the handler returns, only after the handler has written the batch. When
writing fails with one of the handler's retryable errors, the engine holds the
batch: it pauses its partitions and keeps polling (so the group keeps the member
and the statistics keep the lag metric live) while tenacity waits with
exponential backoff between attempts. Each attempt gets a time budget derived
from `max.poll.interval.ms`, so no attempt can make the member miss a poll.

Lifecycle: `run()` subscribes and loops until `stop()` (a warm shutdown: finish
the batch in hand, then leave; while holding, give up after
`shutdown_timeout_s` and raise `ShutdownTimeout` without committing). `finally`
closes the handler and the consumer, which leaves the group at once.

Liveness: the loop touches `liveness_file` (at most once a second) whenever it
polls, holding included; a frozen loop leaves the file to age. Decision: 0008.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Generic, TypeVar

import tenacity
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from purchases_project.kafka_engine.contract import BatchHandler, EngineSettings, ShutdownTimeout
from purchases_project.kafka_engine.observe import BATCH_SIZE, HELD, LAG, POLL_GAP, RETRIES, Liveness
from purchases_project.kafka_messages import Partition, offset_of, partition_of

logger = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=BatchHandler)


class Engine(Generic[Handler]):
    def __init__(self, config: EngineSettings, handler: Handler):
        self.config = config
        self.handler = handler
        self._stopping = False
        self._stop_requested_at: float | None = None
        self._assigned: set[Partition] = set()
        self._consumer: Consumer | None = None
        self._liveness = Liveness(config.liveness_file)
        self._last_poll_end: float | None = None
        self.max_poll_gap_s = 0.0

    @property
    def _client(self) -> Consumer:
        assert self._consumer is not None, "run() creates the consumer before it polls"
        return self._consumer

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._stop_requested_at = time.monotonic()

    def run(self) -> None:
        self._liveness.touch()
        self.handler.open()
        self._consumer = Consumer(
            {
                **self.config.kafka,
                "statistics.interval.ms": self.config.statistics_interval_ms,
                "stats_cb": self._on_stats,
                "error_cb": self._log_kafka_error,
            }
        )
        self._consumer.subscribe(
            [self.config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        try:
            while not self._stopping:
                if messages := self._next_batch():
                    self._process(messages)
        finally:
            self._close()

    # -- polling -----------------------------------------------------------

    def _consume(self, num_messages: int, timeout: float) -> list[Message]:
        started = time.monotonic()
        if self._last_poll_end is not None:
            gap = started - self._last_poll_end
            if gap > self.max_poll_gap_s:
                self.max_poll_gap_s = gap
                POLL_GAP.set(gap)
        try:
            return self._client.consume(num_messages=num_messages, timeout=timeout)
        finally:
            self._last_poll_end = time.monotonic()
            self._liveness.touch()

    def _next_batch(self) -> list[Message]:
        """One message, then what arrives within `batch_wait_s` (a lone event waits no longer)."""
        first = self._consume(1, self.config.poll_timeout_s)
        if first and self.config.batch_size > 1:
            first += self._consume(self.config.batch_size - 1, self.config.batch_wait_s)
        messages = []
        for message in first:
            if (error := message.error()) is not None:
                self._log_kafka_error(error)
            else:
                messages.append(message)
        return messages

    # -- one batch -----------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        started = time.monotonic()
        BATCH_SIZE.observe(len(messages))
        batch = self.handler.prepare(messages)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(self.handler.retryable),
            wait=tenacity.wait_random_exponential(
                multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s
            ),
            sleep=self._hold,
            before_sleep=lambda state: self._on_failed_attempt(state, len(messages)),
            reraise=True,
        )
        try:
            retrying(lambda: self.handler.write(batch, self._budget()))
        except ShutdownTimeout:
            self.handler.give_up(batch)
            raise
        finally:
            HELD.set(0)
        if retrying.statistics.get("attempt_number", 1) > 1:
            logger.info("wrote the held batch of %d messages", len(messages))
        handled = self.handler.finish(batch, started)
        self._commit(handled.commit)
        if handled.stop is not None:
            raise handled.stop

    def _budget(self) -> float:
        budget = self.config.attempt_budget_s
        if self._stopping:  # a warm shutdown's deadline bounds the attempt too
            budget = max(min(budget, self._shutdown_left()), 0.001)
        return budget

    def _shutdown_left(self) -> float:
        assert self._stop_requested_at is not None, "stop() sets it before the engine is stopping"
        return self._stop_requested_at + self.config.shutdown_timeout_s - time.monotonic()

    def _on_failed_attempt(self, state: tenacity.RetryCallState, size: int) -> None:
        RETRIES.inc()
        HELD.set(size)
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
        paused = [TopicPartition(t, p) for t, p in self._assigned]
        if paused:
            self._client.pause(paused)
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0:
                for message in self._consume(1, min(0.2, left)):
                    if not message.error():
                        # A partition assigned during the hold delivered: put it back for later.
                        tp = TopicPartition(*partition_of(message), offset_of(message))
                        self._client.pause([tp])
                        self._client.seek(tp)
        finally:
            resume = [TopicPartition(t, p) for t, p in self._assigned]
            if resume:
                self._client.resume(resume)

    def _commit(self, next_offsets: dict[Partition, int]) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items() if (t, p) in self._assigned]
        if not offsets:
            return
        try:
            self._client.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The batch is written; after a rebalance its new owner reads it again and
            # finds it there.
            logger.warning("commit failed, the messages will be redelivered: %s", exc)

    def _close(self) -> None:
        try:
            self.handler.close()
        finally:
            if self._consumer is not None:
                self._consumer.close()  # leaves the group at once, so partitions move without waiting
            self._forget(list(self._assigned))

    # -- callbacks (run inside consume) -----------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        logger.info("assigned partitions %s", sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])
        logger.info("revoked partitions %s", sorted(tp.partition for tp in partitions))

    def _forget(self, partitions: list[Partition]) -> None:
        self.handler.partitions_revoked(partitions)
        for topic, partition in partitions:
            self._assigned.discard((topic, partition))
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

    @staticmethod
    def _log_kafka_error(error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        level = logging.ERROR if error.fatal() else logging.WARNING
        logger.log(level, "kafka: %s", error)
