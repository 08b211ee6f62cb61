"""The consumer in process, on topics of its own, against the real broker and database."""

import threading
import uuid
from decimal import Decimal

import pytest
from confluent_kafka import Producer
from pymongo.errors import PyMongoError

from devstack.stack import wait_until
from ledger import db, selectors
from ledger.consumer import Batch, PurchaseBatches, TooManyInvalidEvents, purchase_consumer
from ledger.services import RecordResult
from ledger.tests.helpers import summaries_match_purchases
from purchases_project.events import PurchaseEvent
from purchases_project.topics import topics_ensure
from tests.support import kafka
from tests.support.metrics import scrape


@pytest.fixture
def topic(live_settings):
    name = f"t-{uuid.uuid4().hex[:10]}"
    topics_ensure(bootstrap_servers=live_settings.KAFKA_BOOTSTRAP_SERVERS, topics={name: 1, f"{name}.dlq": 1})
    return name


def settings_for(live_settings, topic, **overrides) -> dict:
    """Arguments for `purchase_consumer`: a group and dead-letter topic of the test's own."""
    return {
        "topic": topic,
        "group": f"g-{topic}",
        "dlq_topic": f"{topic}.dlq",
        "poll_timeout_s": 0.2,
        "kafka": {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500, "max.poll.interval.ms": 6000},
        **overrides,
    }


def produce(bootstrap, topic, values, headers=None, partition=None):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for key, value in values:
        extra = {} if partition is None else {"partition": partition}
        producer.produce(topic, key=key, value=value, headers=headers, **extra)
        producer.flush(10)  # one record per batch: the broker's end offsets stay exact
    assert producer.flush(10) == 0


def good(userid, price="10.00"):
    event = PurchaseEvent.new(username="john", userid=userid, price=Decimal(price))
    return event, (userid.encode(), event.as_message())


class Running:
    """A PurchaseConsumer on a thread; `wait_for` polls a condition while it runs."""

    def __init__(self, config):
        self.consumer = purchase_consumer(**config)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.consumer.run()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc

    def stop(self):
        self.consumer.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def committed(bootstrap, group, topic, partition=0) -> int:
    """The group's committed offset (negative: none yet)."""
    return kafka.committed(bootstrap, group, topic, [partition])[partition]


def wait_for(condition, timeout=30.0):
    wait_until(condition, timeout, "the condition", interval=0.1)


def dead_letters(bootstrap, topic, expected, timeout=20.0):
    """The first `expected` messages of a dead-letter topic (fewer if they do not come)."""
    return kafka.read_count(bootstrap, topic, expected, timeout=timeout)


def test_consumer_stores_good_events_and_dead_letters_bad_ones(live_settings, topic, userid):
    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    _, first_record = good(userid, "29.99")
    _, last_record = good(userid, "15.50")
    produce(
        bootstrap,
        topic,
        [first_record, (b"x", b"{not json"), (b"y", b'{"schema_version": 1}'), last_record],
        headers=[("x-request-id", b"rid-1")],
    )
    running = Running(settings_for(live_settings, topic))
    try:
        wait_for(lambda: selectors.user_summary_get(userid=userid)[0] == 2)
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) == 4)
    finally:
        running.stop()
    assert running.error is None
    assert selectors.user_summary_get(userid=userid) == (2, Decimal("45.49"))

    letters = dead_letters(bootstrap, f"{topic}.dlq", 2)
    assert [m.value() for m in letters] == [b"{not json", b'{"schema_version": 1}']
    headers = dict(letters[0].headers())
    assert headers["dlq-topic"] == topic.encode()
    assert headers["dlq-partition"] == b"0"
    assert headers["dlq-offset"] == b"1"
    assert headers["dlq-reason"].startswith(b"not JSON")
    assert headers["x-request-id"] == b"rid-1"
    assert dict(letters[1].headers())["dlq-reason"].startswith(b"Missing required fields")


def test_redelivered_events_are_stored_once(live_settings, topic, userid):
    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    event, record = good(userid, "5.00")
    produce(bootstrap, topic, [record, record])
    running = Running(settings_for(live_settings, topic))
    try:
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) == 2)
    finally:
        running.stop()
    database = db.connect()[live_settings.MONGODB_DATABASE]
    assert database["purchases"].count_documents({"purchase_id": event.purchase_id}) == 1
    assert selectors.user_summary_get(userid=userid) == (1, Decimal("5.00"))
    assert not summaries_match_purchases(database)


def test_a_long_run_of_invalid_events_stops_the_consumer_where_the_run_began(live_settings, topic, userid):
    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    _, before = good(userid, "1.00")
    produce(bootstrap, topic, [before] + [(b"k", b"garbage")] * 4 + [good(userid)[1]])
    config = settings_for(live_settings, topic, dlq_max_consecutive=3)
    running = Running(config)
    running.thread.join(30)
    assert isinstance(running.error, TooManyInvalidEvents)
    # The good event before the run is stored and committed; the run and what follows are not.
    assert committed(bootstrap, f"g-{topic}", topic) == 1
    assert selectors.user_summary_get(userid=userid)[0] == 1
    assert len(dead_letters(bootstrap, f"{topic}.dlq", 3)) == 3

    # A restart stops again at the same place and dead-letters none of the run again:
    # no crash loop that fills the dead-letter topic with copies.
    for _ in range(2):
        again = Running(config)
        again.thread.join(30)
        assert isinstance(again.error, TooManyInvalidEvents)
        assert committed(bootstrap, f"g-{topic}", topic) == 1
    assert len(dead_letters(bootstrap, f"{topic}.dlq", 4, timeout=3)) == 3


def test_lag_is_reported_per_partition_and_drops_to_zero(live_settings, topic, userid):
    from purchases_project.kafka_engine import LAG

    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    produce(bootstrap, topic, [good(userid)[1] for _ in range(3)])
    running = Running(settings_for(live_settings, topic, statistics_interval_ms=200))
    try:
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) == 3)
        wait_for(lambda: LAG.labels(topic, "0")._value.get() == 0 and _has_lag_series(topic))
    finally:
        running.stop()
    assert not _has_lag_series(topic)  # the partition's series goes when it is revoked


def _has_lag_series(topic) -> bool:
    from prometheus_client import REGISTRY

    return any(
        sample.labels.get("topic") == topic
        for metric in REGISTRY.collect()
        if metric.name == "kafka_consumer_lag"
        for sample in metric.samples
    )


@pytest.fixture
def two_partitions(live_settings):
    name = f"t-{uuid.uuid4().hex[:10]}"
    topics_ensure(bootstrap_servers=live_settings.KAFKA_BOOTSTRAP_SERVERS, topics={name: 2, f"{name}.dlq": 1})
    return name


def test_runs_of_invalid_events_are_counted_per_partition(live_settings, two_partitions, userid):
    # Valid events on partition 1 arrive between the invalid ones on partition 0: they
    # must not end partition 0's run, however the partitions interleave.
    bootstrap, topic = live_settings.KAFKA_BOOTSTRAP_SERVERS, two_partitions
    for _ in range(4):
        produce(bootstrap, topic, [(b"k", b"garbage")], partition=0)
        produce(bootstrap, topic, [good(userid)[1]], partition=1)
    running = Running(settings_for(live_settings, topic, dlq_max_consecutive=3, batch_size=1))
    running.thread.join(30)
    assert isinstance(running.error, TooManyInvalidEvents)
    assert committed(bootstrap, f"g-{topic}", topic, partition=0) == 0
    assert len(dead_letters(bootstrap, f"{topic}.dlq", 4, timeout=3)) == 3


def test_a_missing_dead_letter_topic_holds_the_batch_loudly_and_drops_nothing(live_settings, userid, caplog):
    from ledger.dead_letters import FAILURES as DEAD_LETTER_FAILURES

    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    topic = f"t-{uuid.uuid4().hex[:10]}"
    topics_ensure(bootstrap_servers=bootstrap, topics={topic: 1})  # no dead-letter topic
    produce(bootstrap, topic, [good(userid)[1], (b"k", b"garbage"), good(userid)[1]])
    failures_before = DEAD_LETTER_FAILURES._value.get()
    running = Running(settings_for(live_settings, topic))
    try:
        wait_for(lambda: DEAD_LETTER_FAILURES._value.get() >= failures_before + 2)
        assert running.thread.is_alive() and running.error is None
        assert committed(bootstrap, f"g-{topic}", topic) <= 1  # never past the invalid event
        assert any(
            r.levelname == "ERROR" and "could not dead-letter" in r.getMessage() for r in caplog.records
        )

        topics_ensure(bootstrap_servers=bootstrap, topics={f"{topic}.dlq": 1})
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) == 3, timeout=60)
    finally:
        running.stop()
    assert [m.value() for m in dead_letters(bootstrap, f"{topic}.dlq", 1)] == [b"garbage"]
    assert selectors.user_summary_get(userid=userid)[0] == 2


def test_the_liveness_file_goes_stale_when_the_loop_freezes_while_metrics_still_answer(
    live_settings, topic, userid, tmp_path, monkeypatch
):
    import time

    from prometheus_client import start_http_server

    from devstack.stack import free_port
    from ledger import services

    alive = tmp_path / "alive"
    release = threading.Event()
    record = services.purchases_record

    def frozen(**kwargs):  # a driver call that never returns, whatever its timeout says
        release.wait(60)
        return record(**kwargs)

    monkeypatch.setattr(services, "purchases_record", frozen)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1")
    running = Running(settings_for(live_settings, topic, liveness_file=str(alive)))
    try:
        wait_for(alive.exists)
        first = alive.stat().st_mtime
        wait_for(lambda: alive.stat().st_mtime > first, timeout=5)  # idle, the loop keeps touching it

        produce(live_settings.KAFKA_BOOTSTRAP_SERVERS, topic, [good(userid)[1]])
        wait_for(lambda: time.time() - alive.stat().st_mtime > 6, timeout=30)
        assert "kafka_consumer_lag" in scrape(port)  # answers while the loop is frozen

        release.set()
        wait_for(lambda: time.time() - alive.stat().st_mtime < 2, timeout=10)
        wait_for(lambda: selectors.user_summary_get(userid=userid)[0] == 1)
    finally:
        release.set()
        running.stop()
        server.shutdown()


def test_a_batch_too_slow_for_one_transaction_is_written_in_smaller_ones(live_settings, userid):
    """A transaction that outlives the attempt's budget halves the next attempt's transactions;
    what an earlier attempt wrote is neither written nor counted again."""
    handler = PurchaseBatches(
        group="g-chunks",
        dlq_topic="unused.dlq",
        dlq_max_consecutive=100,
        producer_config={"bootstrap.servers": live_settings.KAFKA_BOOTSTRAP_SERVERS},
    )
    events = [PurchaseEvent.new(username="c", userid=userid, price=Decimal("1.00")) for _ in range(6)]
    batch = Batch(events=[(event, None) for event in events])
    handler.open()
    try:
        size = handler._chunk
        with pytest.raises(PyMongoError):
            handler.write(batch, budget_s=0.000001)  # no transaction fits in this budget
        assert handler._chunk == size // 2
        handler._chunk = 4  # six events: two transactions
        handler.write(batch, budget_s=10)
    finally:
        handler.close()
    assert batch.result == RecordResult(stored_ids=frozenset(e.purchase_id for e in events), duplicates=0)
    assert handler._chunk == 8
    assert selectors.user_summary_get(userid=userid) == (6, Decimal("6.00"))
