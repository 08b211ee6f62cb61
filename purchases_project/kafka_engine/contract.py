"""What the consumer loop and the code that handles its batches agree on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Message

from purchases_project.kafka_engine.observe import LIVENESS_BUDGET_S
from purchases_project.kafka_messages import Partition


class ShutdownTimeout(Exception):
    """Still unable to write the batch in hand at the shutdown deadline; nothing was committed."""


@dataclass
class Handled:
    """What the engine does after a batch: commit these next offsets, then maybe stop."""

    commit: dict[Partition, int]
    stop: Exception | None = None


class BatchHandler(Protocol):
    @property
    def retryable(self) -> tuple[type[Exception], ...]: ...

    def open(self) -> None: ...
    def prepare(self, messages: list[Message]) -> Any: ...
    def write(self, batch: Any, budget_s: float) -> None: ...
    def finish(self, batch: Any, started: float) -> Handled: ...
    def give_up(self, batch: Any) -> None: ...
    def partitions_revoked(self, partitions: list[Partition]) -> None: ...
    def close(self) -> None: ...


@dataclass
class EngineSettings:
    topic: str
    kafka: dict[str, Any]  # the consumer's client configuration (purchases_project.kafka_config.consumer)
    batch_size: int
    batch_wait_s: float = 0.02
    poll_timeout_s: float = 1.0
    shutdown_timeout_s: float = 20.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    statistics_interval_ms: int = 1000
    liveness_file: str = ""

    @property
    def attempt_budget_s(self) -> float:
        """At most half the poll interval, so an attempt, the commit and the next poll fit in
        it, and at most 4 s, so the loop polls (and proves it is alive) at least every 5 s."""
        return min(self.kafka["max.poll.interval.ms"] / 1000 / 2, LIVENESS_BUDGET_S)
