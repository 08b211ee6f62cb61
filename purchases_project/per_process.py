"""What each process owns by itself, and what the web server runs as each worker starts and stops.

`PerProcess` holds one client per process (the Kafka producer, the ledger's HTTP session, the
MongoDB connection): made on first use, forgotten in a forked child (neither librdkafka's
threads nor a MongoClient's sockets survive a fork, so the child makes its own), replaced
when it reports itself unusable.

Apps register their per-process start and stop steps (`on_start`, `on_stop`, usually in
`AppConfig.ready()`); `purchases_project.serve` runs them in each worker, so the server
imports no app.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PerProcess(Generic[T]):
    """One `T` per process, made by `factory` on first use.

    `usable(value)` false makes `get()` replace it, after `discard(value)` (e.g. a producer
    that reported a fatal error). A forked child starts without one; the parent's is left
    alone there (closing it would act on the parent's sockets and threads).
    """

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        usable: Callable[[T], bool] | None = None,
        discard: Callable[[T], object] | None = None,
    ):
        self._factory = factory
        self._usable = usable
        self._discard = discard
        self._lock = threading.Lock()
        self._value: T | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._value = None
        self._lock = threading.Lock()  # another thread may have held it at the fork

    def _ok(self, value: T | None) -> bool:
        return value is not None and (self._usable is None or self._usable(value))

    def get(self) -> T:
        value = self._value
        if self._ok(value):
            return value  # type: ignore[return-value]
        with self._lock:
            value = self._value
            if not self._ok(value):
                if value is not None and self._discard is not None:
                    self._discard(value)
                value = self._value = self._factory()
        return value  # type: ignore[return-value]

    def take(self) -> T | None:
        """This process's value, if made, no longer held here: the caller closes it."""
        with self._lock:
            value, self._value = self._value, None
        return value


_starts: list[Callable[[], object]] = []
_stops: list[Callable[[], object]] = []


def on_start(step: Callable[[], object]) -> None:
    """Run `step` in each web worker before it serves (e.g. connect a client early)."""
    if step not in _starts:
        _starts.append(step)


def on_stop(step: Callable[[], object]) -> None:
    """Run `step` in each web worker once it has stopped serving (e.g. flush a client)."""
    if step not in _stops:
        _stops.append(step)


def started() -> None:
    for step in _starts:
        step()


def stopping() -> None:
    """Every stop step runs, last registered first, even if one fails."""
    for step in reversed(_stops):
        try:
            step()
        except Exception:
            logger.exception("stop step %s failed", getattr(step, "__qualname__", step))
