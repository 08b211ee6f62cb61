"""What the engine and the code it runs agree on.

A `Handler` decodes one message into an event (or refuses it with `InvalidMessage`)
and writes a list of events, answering one `Outcome` per event in order, or raising
`Retryable` when nothing it answers for could be written now (the engine holds the
batch and tries again). It never commits, dead-letters, sleeps or reads settings:
those are the engine's policies (decision 0008).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from confluent_kafka import Message

from purchases_project.kafka_engine.observe import LIVENESS_BUDGET_S

Event = TypeVar("Event")


class InvalidMessage(Exception):
    """`decode` refuses a message; the text is the reason (the `dlq-reason` header)."""


class Retryable(Exception):
    """The write can succeed later (the database is away). `timed_out`: it ran out of its time
    budget, so the engine tries fewer events at a time."""

    def __init__(self, message: str, *, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class ShutdownTimeout(Exception):
    """Still unable to write the batch in hand at the shutdown deadline; nothing was committed."""


class TooManyInvalidEvents(Exception):
    """A run of invalid events longer than the cap: something upstream is broken."""


class Status(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event. `reason` (invalid, conflict) is the dead letter's `dlq-reason`;
    `detail` goes to the log only."""

    status: Status
    reason: str = ""
    detail: str = ""

    @property
    def refused(self) -> bool:
        return self.status in (Status.INVALID, Status.CONFLICT)


STORED = Outcome(Status.STORED)
DUPLICATE = Outcome(Status.DUPLICATE)


def invalid(reason: str) -> Outcome:
    return Outcome(Status.INVALID, reason)


def conflict(reason: str, detail: str = "") -> Outcome:
    return Outcome(Status.CONFLICT, reason, detail)


class Handler(Protocol[Event]):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def decode(self, message: Message) -> Event: ...
    def write(self, events: Sequence[Event], *, timeout_s: float) -> Sequence[Outcome]: ...


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
    # Events per `write` call: halved after a call that ran out of time, doubled back after a
    # batch written whole, so a slow database gets smaller transactions that fit the budget.
    max_chunk: int = 1000
    min_chunk: int = 25
    # A job (replay_dlq) rather than a service: stop once nothing arrived for this long after
    # the assignment, or after this many messages.
    stop_when_idle_s: float | None = None
    max_messages: int | None = None
    join_timeout_s: float = 60.0

    @property
    def attempt_budget_s(self) -> float:
        """At most half the poll interval, so an attempt, the commit and the next poll fit in
        it, and at most 4 s, so the loop polls (and proves it is alive) at least every 5 s."""
        return min(self.kafka["max.poll.interval.ms"] / 1000 / 2, LIVENESS_BUDGET_S)


def dead_letter_producer_config(config: EngineSettings) -> dict[str, Any]:
    """A dead letter not acknowledged within one attempt's budget fails, so the batch is held."""
    return {"linger.ms": 5, "message.timeout.ms": int(config.attempt_budget_s * 1000)}
