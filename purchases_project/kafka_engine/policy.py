"""What the engine does with refused events, and which offsets it commits.

`DeadLetterPolicy` (the consumer): refused events go to the dead-letter topic. More
than `max_consecutive` events in a row on one partition that `decode` refused (a
broken producer upstream) stop the engine: offsets on that partition stay at the
run's first event, nothing more of it is dead-lettered, and what follows the run in
the batch is neither written nor counted. An event the write refused (a
`purchase_id` conflict) is dead-lettered on its own and ends a run, like any event
that decoded. While a run is open its partition's offset stays at the run's start,
so a restart reads the run again; a mark (`MarkStore`, written after the dead
letters are acknowledged) says how far the run is already dead-lettered, so a
restart never dead-letters an event twice. (arroyo's `DlqPolicy` with a
consecutive limit, strict where arroyo logs and drops: decision 0008.)

`LeaveRefused` (replay_dlq): a refused event stays where it is; its partition's
offset stays at the first one left, so a later run, after a further fix, sees it
again.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from purchases_project.kafka_engine.batch import DEAD_LETTERED, EARLIER, LEFT, Batch
from purchases_project.kafka_engine.dead_letters import DeadLetter, DeadLetterSender
from purchases_project.kafka_messages import Partition


class MarkStore(Protocol):
    """Per partition, the next offset of an open run not yet dead-lettered. Raises
    `Retryable` when the store is away."""

    def get(self, partitions: list[Partition], *, timeout_s: float) -> dict[Partition, int]: ...
    def put(self, marks: dict[Partition, int | None], *, timeout_s: float) -> None: ...


class Policy(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def plan(self, batch: Batch[Any]) -> None: ...
    def settle(self, batch: Batch[Any], deadline: float) -> None: ...
    def revoked(self, partitions: list[Partition]) -> None: ...


def _left_s(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)


class DeadLetterPolicy:
    def __init__(self, *, sender: DeadLetterSender, max_consecutive: int, marks: MarkStore):
        self.sender, self.max_consecutive, self.marks = sender, max_consecutive, marks
        self._runs: dict[Partition, list[int]] = {}  # partition -> [first offset, length] of its open run
        self._marks: dict[Partition, int] = {}  # partition -> next offset not yet dead-lettered

    def open(self) -> None:
        self.sender.open()

    def close(self) -> None:
        self.sender.close()

    def revoked(self, partitions: list[Partition]) -> None:
        for partition in partitions:
            self._runs.pop(partition, None)
            self._marks.pop(partition, None)

    def plan(self, batch: Batch[Any]) -> None:
        """Once per batch, before the write: count runs, cut at the cap, choose the offsets."""
        for item in batch.items:
            partition = item.partition
            if partition in batch.capped:
                item.cut = True
                continue
            if item.outcome is not None and item.outcome.refused:
                run = self._runs.setdefault(partition, [item.offset, 0])
                run[1] += 1
                if run[1] > self.max_consecutive:
                    batch.capped.add(partition)
                    batch.cap = self.max_consecutive
                    batch.commit[partition] = run[0]
                    item.cut = True
                    continue
            elif self._runs.pop(partition, None) is not None:
                batch.marks[partition] = None  # the run ended: its mark goes
            batch.commit[partition] = item.offset + 1
        for partition, (first, _) in self._runs.items():
            if partition in batch.commit:
                batch.commit[partition] = first  # the run may yet trip the cap: restart at its start

    def settle(self, batch: Batch[Any], deadline: float) -> None:
        """After the write (retried with it): dead-letter what was refused, then save the marks."""
        refused = batch.refused()
        unknown = sorted({item.partition for item in refused} - set(self._marks))
        if unknown:
            found = self.marks.get(unknown, timeout_s=_left_s(deadline))
            self._marks.update({partition: found.get(partition, -1) for partition in unknown})
        for item in refused:
            assert item.outcome is not None, "refused items have an outcome"
            if item.offset < self._marks.get(item.partition, -1):
                item.fate = EARLIER
                continue
            if item.letter is None:
                item.letter = DeadLetter(item.message, item.outcome.reason)
            if item.partition in self._runs:  # still open after this batch: remember how far it went
                batch.marks[item.partition] = max(batch.marks.get(item.partition) or 0, item.offset + 1)
        letters = [item.letter for item in refused if item.letter is not None and item.fate is None]
        self.sender.send(letters, deadline)
        for item in refused:
            if item.fate is None:
                item.fate = DEAD_LETTERED
        if batch.marks:
            self.marks.put(batch.marks, timeout_s=_left_s(deadline))
            for partition, offset in batch.marks.items():
                if offset is None:
                    self._marks.pop(partition, None)
                else:
                    self._marks[partition] = offset
            batch.marks = {}


class LeaveRefused:
    def __init__(self) -> None:
        self.first_left: dict[Partition, int] = {}

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def revoked(self, partitions: list[Partition]) -> None:
        pass  # commits are for assigned partitions only; the first left stays the floor

    def plan(self, batch: Batch[Any]) -> None:
        for item in batch.items:
            if item.outcome is not None and item.outcome.refused:
                self.first_left.setdefault(item.partition, item.offset)
            batch.commit[item.partition] = self.first_left.get(item.partition, item.offset + 1)

    def settle(self, batch: Batch[Any], deadline: float) -> None:
        for item in batch.refused():
            item.fate = LEFT
            first = min(self.first_left.get(item.partition, item.offset), item.offset)
            self.first_left[item.partition] = first
            batch.commit[item.partition] = min(batch.commit.get(item.partition, first), first)
