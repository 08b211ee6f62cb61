"""The consumer engine's policies with a fake consumer, producer and handler (no broker, no database).

The fakes record what happens in one log, in order, so a test can say "the commit came
after the write". The real thing, against the real broker and database, is in
ledger/tests/test_consumer.py and tests/faults/.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from devstack.stack import wait_until
from purchases_project import kafka_config
from purchases_project.kafka_engine import (
    DUPLICATE,
    STORED,
    DeadLetterPolicy,
    DeadLetterSender,
    Engine,
    EngineSettings,
    InvalidMessage,
    LeaveRefused,
    Outcome,
    Retryable,
    ShutdownTimeout,
    TooManyInvalidEvents,
    conflict,
)
from purchases_project.kafka_messages import Partition

TOPIC = "t"


@pytest.mark.parametrize(("interval_ms", "budget_s"), [(6000, 3.0), (300000, 4.0), (2000, 1.0)])
def test_an_attempt_gets_half_the_poll_interval_and_at_most_four_seconds(interval_ms, budget_s):
    config = EngineSettings(topic="t", kafka={"max.poll.interval.ms": interval_ms}, batch_size=1)
    assert config.attempt_budget_s == budget_s


def test_every_client_configuration_carries_the_security_settings(settings):
    settings.KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
    settings.KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
    settings.KAFKA_SASL_USERNAME = "purchases"
    settings.KAFKA_SASL_PASSWORD = "secret"
    settings.KAFKA_SSL_CA_LOCATION = "/etc/kafka/ca.pem"
    for config in (
        kafka_config.producer(),
        kafka_config.consumer(group="g"),
        kafka_config.admin(bootstrap_servers="b:9092"),
    ):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.username"] == "purchases" and config["ssl.ca.location"] == "/etc/kafka/ca.pem"


# -- fakes ----------------------------------------------------------------------


class FakeMessage:
    def __init__(self, partition: int, offset: int, value: bytes):
        self._partition, self._offset, self._value = partition, offset, value

    def topic(self):
        return TOPIC

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def value(self):
        return self._value

    def key(self):
        return b"k"

    def headers(self):
        return [("x-request-id", b"rid")]

    def error(self):
        return None


class FakeUnreadable(FakeMessage):
    """What the client hands over for a record it could not read: an error naming its offset."""

    def value(self):
        return None

    def error(self):
        return KafkaError(KafkaError._BAD_MSG, "could not parse the record")


class FakeConsumer:
    """Delivers `arrivals` in order from the committed offsets, honouring pause, seek and revocation.

    A value of None is an offset with no record (as on a compacted topic). `skipped_once`
    are offsets the fake passes over the first time it reaches them (a fetch that lost a
    record); `unreadable` counts how often an offset comes as an error instead of its record.
    """

    def __init__(self, log: list, arrivals: list[tuple[int, bytes]], committed: dict[int, int] | None = None):
        self.log = log
        self.messages: list[FakeMessage] = []
        counters: dict[int, int] = {}
        for partition, value in arrivals:
            self.messages.append(FakeMessage(partition, counters.get(partition, 0), value))
            counters[partition] = counters.get(partition, 0) + 1
        self.partitions = sorted(counters) or [0]
        self.offsets = dict(committed or {})
        self.position = {p: self.offsets.get(p, 0) for p in self.partitions}
        self.assigned: set[int] = set()
        self.paused: set[int] = set()
        self.polls = 0
        self.on_poll: Callable[[FakeConsumer], None] | None = None
        self.closed = False
        self.skipped_once: set[tuple[int, int]] = set()
        self.unreadable: dict[tuple[int, int], int] = {}

    def factory(self, config: dict) -> FakeConsumer:
        return self

    def subscribe(self, topics, on_assign, on_revoke, on_lost):
        self._on_assign, self._on_revoke = on_assign, on_revoke

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.polls += 1
        if not self.assigned and not self.closed and self.polls == 1:
            self.reassign(*self.partitions)
        if self.on_poll is not None:
            self.on_poll(self)
        found: list[FakeMessage] = []
        for message in self.messages:
            p, offset = message.partition(), message.offset()
            if len(found) == num_messages:
                break
            if p not in self.assigned or p in self.paused or offset < self.position[p]:
                continue
            if (p, offset) in self.skipped_once:
                self.skipped_once.discard((p, offset))
                self.position[p] = offset + 1
            elif self.unreadable.get((p, offset), 0) > 0:
                self.unreadable[(p, offset)] -= 1
                found.append(FakeUnreadable(p, offset, b""))
                self.position[p] = offset + 1
            elif message.value() is not None:
                found.append(message)
                self.position[p] = offset + 1
        if not found:
            time.sleep(min(timeout, 0.002))
        return found

    def assign(self, tps) -> None:
        pass  # the engine's on_assign assigns; `reassign` below models the group's side

    def reassign(self, *partitions: int) -> None:
        self.assigned |= set(partitions)
        self.position.update({p: self.offsets.get(p, 0) for p in partitions})
        self._on_assign(self, [TopicPartition(TOPIC, p) for p in partitions])

    def revoke(self, *partitions: int) -> None:
        self.assigned -= set(partitions)
        self._on_revoke(self, [TopicPartition(TOPIC, p) for p in partitions])

    def pause(self, tps):
        self.paused |= {tp.partition for tp in tps}
        self.log.append(("pause", sorted(tp.partition for tp in tps)))

    def resume(self, tps):
        partitions = {tp.partition for tp in tps}
        if partitions & self.paused:
            self.log.append(("resume", sorted(partitions)))
        self.paused -= partitions

    def seek(self, tp):
        self.position[tp.partition] = tp.offset
        self.log.append(("seek", (tp.partition, tp.offset)))

    def committed(self, tps, timeout):  # the group's committed offsets
        return [TopicPartition(TOPIC, tp.partition, self.offsets.get(tp.partition, -1001)) for tp in tps]

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        got = {tp.partition: tp.offset for tp in offsets}
        self.offsets.update(got)
        self.log.append(("commit", got))

    def close(self):
        self.closed = True


class FakeProducer:
    """The dead-letter producer: acknowledges what it was given at flush, unless `down`."""

    def __init__(self, log: list):
        self.log, self.down, self.sent = log, False, []
        self._pending: list = []

    def factory(self, config: dict) -> FakeProducer:
        return self

    def produce(self, topic, key, value, headers, on_delivery):
        self._pending.append((value, dict(headers), on_delivery))

    def flush(self, timeout: float = 0) -> int:
        if self.down:
            return len(self._pending)
        for value, headers, report in self._pending:
            self.sent.append((value, headers))
            self.log.append(("dead-letter", value))
            report(None, None)
        self._pending = []
        return 0


class FakeHandler:
    """Events are the message text. `bad...` does not decode; `dup...` is a duplicate and
    `conflict...` a purchase_id conflict; `failures` retryable errors come first."""

    def __init__(self, log: list, failures: int = 0, timed_out: bool = False, max_events: int | None = None):
        self.log, self.failures, self.timed_out, self.max_events = log, failures, timed_out, max_events
        self.written: list[str] = []
        self.on_write: Callable[[Sequence[str]], None] | None = None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def decode(self, message) -> str:
        text = message.value().decode()
        if text.startswith("bad"):
            raise InvalidMessage(f"not a purchase: {text}")
        return text

    def write(self, events: Sequence[str], *, timeout_s: float) -> list[Outcome]:
        assert timeout_s > 0
        if self.on_write is not None:
            self.on_write(events)
        if self.max_events is not None and len(events) > self.max_events:
            self.log.append(("timed out", len(events)))
            raise Retryable("the transaction outlived its budget", timed_out=True)
        if self.failures:
            self.failures -= 1
            self.log.append(("failed", list(events)))
            raise Retryable("database away", timed_out=self.timed_out)
        self.written += events
        self.log.append(("write", list(events)))
        return [
            DUPLICATE
            if e.startswith("dup")
            else conflict("purchase_id conflict")
            if e.startswith("conflict")
            else STORED
            for e in events
        ]


class Marks:
    def __init__(self):
        self.saved: dict[Partition, int] = {}

    def get(self, partitions, *, timeout_s):
        return {p: self.saved[p] for p in partitions if p in self.saved}

    def put(self, marks, *, timeout_s):
        for p, offset in marks.items():
            if offset is None:
                self.saved.pop(p, None)
            else:
                self.saved[p] = offset


class Setup:
    def __init__(
        self, arrivals, *, committed=None, cap=100, marks=None, handler=None, policy=None, **settings
    ):
        self.log: list = []
        self.consumer = FakeConsumer(self.log, arrivals, committed)
        self.producer = FakeProducer(self.log)
        self.handler = handler or FakeHandler(self.log)
        self.handler.log = self.log
        self.marks = marks or Marks()
        sender = DeadLetterSender(topic="t.dlq", producer_config={}, producer_factory=self.producer.factory)
        self.policy = policy or DeadLetterPolicy(sender=sender, max_consecutive=cap, marks=self.marks)
        config = EngineSettings(
            topic=TOPIC,
            kafka={"max.poll.interval.ms": 6000},
            **{
                "batch_size": 100,
                "batch_wait_s": 0,
                "poll_timeout_s": 0.01,
                "backoff_initial_s": 0.001,
                "backoff_max_s": 0.005,
                "stop_when_idle_s": 0.05,
                **settings,
            },
        )
        self.engine = Engine(config, self.handler, self.policy, consumer_factory=self.consumer.factory)

    def run(self) -> Setup:
        self.engine.run()
        return self

    def entries(self, kind: str) -> list:
        return [value for what, value in self.log if what == kind]


def letters(setup: Setup) -> list[bytes]:
    return [value for value, _ in setup.producer.sent]


# -- commits -------------------------------------------------------------------


def test_offsets_are_committed_after_the_write_as_the_next_offset():
    setup = Setup([(0, b"a"), (0, b"b"), (1, b"c")]).run()
    assert setup.log == [("write", ["a", "b", "c"]), ("commit", {0: 2, 1: 1})]
    assert setup.engine.counts == {"stored": 3}
    assert setup.consumer.closed


def test_a_batch_the_handler_cannot_write_is_held_with_its_partitions_paused_while_polling():
    setup = Setup([(0, b"a"), (1, b"b")], handler=FakeHandler([], failures=3))
    setup.run()
    kinds = [what for what, _ in setup.log if what != "seek"]
    # Nothing is committed while the batch is held; the partitions are paused around every
    # wait and resumed after it; the write is tried again until it succeeds, then committed.
    assert kinds == ["failed", "pause", "resume"] * 3 + ["write", "commit"]
    assert setup.entries("pause")[0] == [0, 1]
    # Each pause seeks to the engine's own positions: what follows the batch in hand.
    assert setup.entries("seek") == [(0, 1), (1, 1)] * 3
    assert setup.entries("commit") == [{0: 1, 1: 1}]
    assert setup.consumer.polls > 6  # it kept polling while it held the batch
    assert setup.engine.counts == {"stored": 2}  # one outcome per event, however many attempts


def test_a_write_that_runs_out_of_time_is_retried_in_smaller_chunks_and_nothing_twice():
    handler = FakeHandler([], max_events=2)
    setup = Setup([(0, f"e{i}".encode()) for i in range(6)], handler=handler, max_chunk=8, min_chunk=1)
    setup.run()
    assert setup.entries("timed out") == [6, 4]  # 8 (the batch of 6), then 4, then 2 fit
    assert setup.entries("write") == [["e0", "e1"], ["e2", "e3"], ["e4", "e5"]]
    assert handler.written == [f"e{i}" for i in range(6)]
    assert setup.entries("commit") == [{0: 6}]
    assert setup.engine._writer.chunk == 4  # a batch written whole doubles it back


def test_a_retry_writes_only_what_the_failed_attempt_did_not():
    handler = FakeHandler([])
    calls = []

    def fail_the_second_chunk_once(events):
        calls.append(list(events))
        if len(calls) == 2:
            handler.failures = 1

    handler.on_write = fail_the_second_chunk_once
    setup = Setup([(0, f"e{i}".encode()) for i in range(4)], handler=handler, max_chunk=2)
    setup.run()
    assert calls == [["e0", "e1"], ["e2", "e3"], ["e2", "e3"]]
    assert handler.written == ["e0", "e1", "e2", "e3"]
    assert setup.engine.counts == {"stored": 4}


# -- dead letters ----------------------------------------------------------------


def test_each_event_gets_one_outcome_and_refused_ones_are_dead_lettered_once(caplog):
    setup = Setup([(0, b"a"), (0, b"dup-1"), (0, b"bad-1"), (0, b"conflict-1"), (0, b"b")])
    setup.producer.down = True
    setup.consumer.on_poll = lambda c: setattr(setup.producer, "down", c.polls < 8)
    with caplog.at_level(logging.WARNING):
        setup.run()
    assert setup.engine.counts == {"stored": 2, "duplicate": 1, "dead_lettered": 2}
    # Written once, dead-lettered once (after the topic came back), committed after both.
    assert setup.entries("write") == [["a", "dup-1", "conflict-1", "b"]]
    assert letters(setup) == [b"bad-1", b"conflict-1"]
    kinds = [what for what, _ in setup.log if what in ("write", "dead-letter", "commit")]
    assert kinds == ["write", "dead-letter", "dead-letter", "commit"]
    headers = dict(setup.producer.sent[1][1])
    assert headers["dlq-reason"] == b"purchase_id conflict"
    assert headers["dlq-offset"] == b"3" and headers["x-request-id"] == b"rid"
    conflicts = [r for r in caplog.records if "purchase_id conflict" in r.getMessage()]
    assert [r.levelname for r in conflicts] == ["ERROR"]
    assert any("could not dead-letter" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_a_run_longer_than_the_cap_stops_at_its_start_and_a_restart_dead_letters_nothing_again():
    arrivals = [(0, b"before"), *[(0, b"bad")] * 4, (0, b"after"), (1, b"other")]
    marks = Marks()
    setup = Setup(arrivals, cap=3, marks=marks, batch_size=3)
    with pytest.raises(
        TooManyInvalidEvents, match="more than 3 invalid events in a row on partitions \\[0\\]"
    ):
        setup.run()
    assert setup.consumer.offsets[0] == 1  # the run's first event
    assert letters(setup) == [b"bad"] * 3
    assert "after" not in setup.handler.written  # what follows the run is not written
    assert marks.saved == {(TOPIC, 0): 4}  # the run is dead-lettered up to offset 4

    again = Setup(arrivals, committed=setup.consumer.offsets, cap=3, marks=marks)
    with pytest.raises(TooManyInvalidEvents):
        again.run()
    assert letters(again) == []  # no crash loop that dead-letters the run again
    assert again.consumer.offsets[0] == 1


def test_runs_are_counted_per_partition():
    # Valid events on partition 1 between the invalid ones on partition 0 do not end its run.
    arrivals = []
    for _ in range(4):
        arrivals += [(0, b"bad"), (1, b"good")]
    setup = Setup(arrivals, cap=3, batch_size=1)
    with pytest.raises(TooManyInvalidEvents):
        setup.run()
    assert setup.consumer.offsets.get(0, 0) == 0
    assert setup.consumer.offsets[1] == 3
    assert len(letters(setup)) == 3


def test_an_open_run_holds_its_partition_at_the_run_start_until_a_valid_event_ends_it():
    marks = Marks()
    setup = Setup([(0, b"a"), (0, b"bad"), (0, b"bad"), (0, b"bad"), (0, b"b")], marks=marks, batch_size=2)
    seen = []
    setup.handler.on_write = lambda events: seen.append(dict(marks.saved))
    setup.run()
    assert setup.entries("commit") == [{0: 1}, {0: 1}, {0: 5}]
    assert seen[-1] == {(TOPIC, 0): 4}  # while the run was open, its mark said how far it went
    assert marks.saved == {}  # the run ended: its mark went
    assert len(letters(setup)) == 3


# -- revocation, shutdown, replay --------------------------------------------------


def test_partitions_revoked_while_a_batch_is_held_are_dropped_from_it(caplog):
    handler = FakeHandler([], failures=2)
    setup = Setup([(0, b"a"), (1, b"b"), (1, b"bad"), (0, b"c")], handler=handler)
    setup.consumer.on_poll = lambda c: c.revoke(1) if 1 in c.assigned and c.polls > 2 else None
    with caplog.at_level(logging.INFO):
        setup.run()
    assert "left 2 held messages of revoked partitions to their new owner" in caplog.text
    assert handler.written == ["a", "c"]  # the new owner of partition 1 writes its events
    assert setup.entries("commit") == [{0: 2}]
    assert letters(setup) == []
    assert setup.engine.counts == {"stored": 2}


def test_a_partition_revoked_and_assigned_again_while_holding_is_consumed_after_the_hold():
    # The client keeps a partition's paused state across a rebalance (as librdkafka does):
    # the engine must resume what it is given once the hold ends.
    handler = FakeHandler([], failures=3)
    setup = Setup([(0, b"a"), (1, b"b")], handler=handler)
    steps = iter([lambda c: c.revoke(0, 1), lambda c: c.reassign(0, 1)])

    def rebalance(consumer):
        if consumer.polls > 2 and not handler.written:
            next(steps, lambda c: None)(consumer)

    setup.consumer.on_poll = rebalance
    setup.run()
    assert handler.written == ["a", "b"]  # delivered again after the hold, from the committed offsets
    assert setup.entries("commit") == [{0: 1, 1: 1}]


def test_a_partition_revoked_and_assigned_again_within_one_hold_commits_nothing_it_did_not_write():
    # The batch in hand is dropped at the revocation; the partitions come back before the
    # retry. Committing the dropped batch's offsets then would skip events never written.
    handler = FakeHandler([], failures=2)
    setup = Setup([(0, b"a"), (0, b"b"), (1, b"c")], handler=handler)

    def rebalance(consumer):
        if consumer.polls == 3:  # the first poll of the first hold
            consumer.revoke(0, 1)
            consumer.reassign(0, 1)

    setup.consumer.on_poll = rebalance
    setup.run()
    assert handler.written == ["a", "b", "c"]
    writes_and_commits = [(what, value) for what, value in setup.log if what in ("write", "commit")]
    assert writes_and_commits == [("write", ["a", "b", "c"]), ("commit", {0: 2, 1: 1})]


def test_a_record_the_client_skipped_is_read_again_before_anything_past_it_is_committed(caplog):
    setup = Setup([(0, b"a"), (0, b"b"), (0, b"c"), (1, b"d")])
    setup.consumer.skipped_once.add((0, 1))
    with caplog.at_level(logging.WARNING):
        setup.run()
    assert sorted(setup.handler.written) == ["a", "b", "c", "d"]
    assert ("seek", (0, 1)) in setup.log
    assert setup.consumer.offsets == {0: 3, 1: 1}
    for commit in setup.entries("commit"):  # never past b before b was written
        assert commit.get(0, 0) <= 1 or "b" in setup.handler.written
    assert "partition 0: offset 2 arrived where 1 was next; reading again from there" in caplog.text


def test_an_assignment_that_starts_past_the_committed_offset_is_sought_back():
    setup = Setup([(0, b"a"), (0, b"b"), (0, b"c")], committed={0: 1})
    setup.consumer.skipped_once.add((0, 1))  # the client starts at 2 where 1 is committed
    setup.run()
    assert setup.handler.written == ["b", "c"]
    assert setup.entries("commit") == [{0: 3}]


def test_offsets_that_are_not_in_the_log_are_passed_after_reading_them_twice(caplog):
    setup = Setup([(0, b"a"), (0, None), (0, None), (0, b"d")])
    with caplog.at_level(logging.WARNING):
        setup.run()
    assert setup.handler.written == ["a", "d"]
    assert setup.entries("seek") == [(0, 1)]  # read again once, then taken
    assert setup.consumer.offsets == {0: 4}
    assert "partition 0: offsets 1 to 2 are not in the log (read twice); going on" in caplog.text


def test_a_record_that_could_not_be_read_is_read_again_and_never_committed_past():
    setup = Setup([(0, b"a"), (0, b"b"), (0, b"c")])
    setup.consumer.unreadable[(0, 1)] = 2
    setup.run()
    assert setup.handler.written == ["a", "b", "c"]
    assert setup.entries("seek") == [(0, 1), (0, 1)]
    assert setup.entries("commit") == [{0: 1}, {0: 3}]


def test_a_record_that_stays_unreadable_stops_the_engine_without_committing_past_it():
    setup = Setup([(0, b"a"), (0, b"b"), (0, b"c")])
    setup.consumer.unreadable[(0, 1)] = 10
    with pytest.raises(KafkaException, match="could not parse the record"):
        setup.run()
    assert setup.handler.written == ["a"]
    assert setup.consumer.offsets == {0: 1}
    assert setup.consumer.closed


def test_a_warm_shutdown_while_holding_gives_up_at_its_deadline_without_committing():
    from purchases_project.kafka_engine import PROCESSED

    failed = PROCESSED.labels("failed")._value.get()
    handler = FakeHandler([], failures=10**6)
    setup = Setup([(0, b"a"), (0, b"b")], handler=handler, shutdown_timeout_s=0.05)
    setup.consumer.on_poll = lambda c: setup.engine.stop() if c.polls > 3 else None
    with pytest.raises(ShutdownTimeout):
        setup.run()
    assert setup.entries("commit") == []
    assert PROCESSED.labels("failed")._value.get() == failed + 2


def test_replay_leaves_refused_events_and_commits_only_up_to_the_first_left():
    policy = LeaveRefused()
    arrivals = [(0, b"a"), (0, b"bad"), (0, b"b"), (1, b"c")]
    setup = Setup(arrivals, policy=policy, batch_size=2)
    setup.run()
    assert setup.handler.written == ["a", "b", "c"]
    assert setup.consumer.offsets == {0: 1, 1: 1}
    assert policy.first_left == {(TOPIC, 0): 1}
    assert setup.engine.counts == {"stored": 3, "left": 1}
    assert letters(setup) == []


def test_the_liveness_file_ages_while_the_loop_is_stuck_in_a_write_and_metrics_still_answer(tmp_path):
    """A driver call that never returns, whatever its timeout says, cannot be made with a real
    server (a frozen one times out: ledger/tests/test_consumer.py), so the handler blocks here."""
    import threading

    from prometheus_client import start_http_server

    from devstack.stack import free_port
    from tests.support.metrics import scrape

    alive, entered, release = tmp_path / "alive", threading.Event(), threading.Event()
    handler = FakeHandler([])
    handler.on_write = lambda events: entered.set() or release.wait(30)
    setup = Setup([(0, b"a")], handler=handler, liveness_file=str(alive), stop_when_idle_s=None)
    setup.consumer.on_poll = lambda c: setup.engine.stop() if handler.written else None
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1")
    runner = threading.Thread(target=setup.run, daemon=True)
    try:
        runner.start()
        wait_until(entered.is_set, 10, "the write")
        touched = alive.stat().st_mtime
        # While it polls, the loop touches the file at least once a second; stuck, it does not.
        wait_until(lambda: time.time() - alive.stat().st_mtime > 2.5, 10, "the file ageing")
        assert alive.stat().st_mtime == touched
        assert "kafka_consumer_lag" in scrape(port)
        release.set()
        runner.join(10)
        assert not runner.is_alive() and handler.written == ["a"]
        assert alive.stat().st_mtime > touched
    finally:
        release.set()
        server.shutdown()


@pytest.mark.parametrize(
    ("header", "logged"),
    [(b"rid-1", "rid-1"), (b'x\n{"level": "ERROR"}', None), (b"\x1b[31m", None), (b"a" * 129, None)],
)
def test_a_request_id_from_the_topic_reaches_the_logs_only_when_it_is_plain(header, logged):
    from purchases_project.kafka_engine.dead_letters import request_id_of

    message = FakeMessage(0, 0, b"v")
    message.headers = lambda: [("x-request-id", header)]
    assert request_id_of(message) == logged
