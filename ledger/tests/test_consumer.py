"""The consumer in process, on topics of its own, against the real broker and database."""

import dataclasses
import signal
import threading
import uuid
from decimal import Decimal

import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from devstack.stack import wait_until
from ledger import db, selectors
from ledger.consumer import PurchaseWriter, Received, purchase_consumer
from ledger.tests.helpers import summaries_match_purchases
from purchases_project.events import PurchaseEvent
from purchases_project.kafka_engine import Retryable, TooManyInvalidEvents
from purchases_project.topics import topics_ensure
from tests.support import kafka


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


def test_offsets_without_records_are_passed_and_nothing_before_them_is_skipped(
    live_settings, topic, userid, caplog
):
    """Each committed transaction leaves a marker at an offset of its own that no consumer
    is given: a real gap. The engine reads such a gap twice, then takes what follows it."""
    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(10)
    for _ in range(3):
        producer.begin_transaction()
        producer.produce(topic, key=userid.encode(), value=good(userid)[1][1])
        producer.commit_transaction(10)
    del producer  # its connections close with it
    running = Running(settings_for(live_settings, topic))
    try:
        wait_for(lambda: selectors.user_summary_get(userid=userid)[0] == 3)
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) >= 5)
    finally:
        running.stop()
    assert running.error is None
    passed = [r.getMessage() for r in caplog.records if "are not in the log" in r.getMessage()]
    assert passed == [
        f"partition 0: offsets {marker} to {marker} are not in the log (read twice); going on"
        for marker in (1, 3)
    ]


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


def registry_samples(name: str, **labels: str) -> dict[str, float]:
    """This process's samples of `name` by partition, read from the registry: reading never
    creates a series (`LAG.labels(...)` would, at 0)."""
    return {
        sample.labels.get("partition", ""): sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    }


@pytest.fixture
def own_database(make_stack, live_settings):
    """A database server of the test's own, so it can be frozen; this process points at it."""
    own = make_stack("own-db")
    own.start_mongo()
    saved = live_settings.MONGODB_URI
    live_settings.MONGODB_URI = own.mongo_uri
    db.close()
    yield own
    own.procs["mongo"].signal(signal.SIGCONT)
    live_settings.MONGODB_URI = saved
    db.close()


def test_lag_rises_while_the_database_is_frozen_and_the_loop_stays_alive(
    live_settings, own_database, topic, tmp_path
):
    """SIGSTOP freezes the real server: writes time out, the consumer holds its batch and keeps
    polling (its liveness file stays fresh), and the lag it reports rises above zero, then
    drops back to zero once the server runs again."""
    bootstrap, userid = live_settings.KAFKA_BOOTSTRAP_SERVERS, "frozen-db-user"
    alive = tmp_path / "alive"
    config = settings_for(live_settings, topic, statistics_interval_ms=200, liveness_file=str(alive))
    mongo = own_database.procs["mongo"]
    produce(bootstrap, topic, [good(userid)[1]])
    running = Running(config)
    try:
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) == 1)
        wait_for(lambda: registry_samples("kafka_consumer_lag", topic=topic) == {"0": 0.0})

        mongo.signal(signal.SIGSTOP)
        produce(bootstrap, topic, [good(userid)[1] for _ in range(3)])
        wait_for(lambda: registry_samples("kafka_consumer_held_messages").get("", 0) > 0)
        wait_for(lambda: registry_samples("kafka_consumer_lag", topic=topic).get("0", 0) > 0)
        touched = alive.stat().st_mtime
        wait_for(lambda: alive.stat().st_mtime > touched, timeout=10)  # holding, not frozen
        assert committed(bootstrap, f"g-{topic}", topic) == 1
        assert running.thread.is_alive() and running.error is None

        mongo.signal(signal.SIGCONT)
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) == 4, timeout=60)
        wait_for(lambda: registry_samples("kafka_consumer_lag", topic=topic) == {"0": 0.0})
    finally:
        mongo.signal(signal.SIGCONT)
        running.stop()
    assert running.error is None
    assert registry_samples("kafka_consumer_lag", topic=topic) == {}  # removed when revoked
    assert selectors.user_summary_get(userid=userid) == (4, Decimal("40.00"))


def test_a_purchase_id_stored_for_another_userid_is_dead_lettered_as_a_conflict(
    live_settings, topic, userid, caplog
):
    from purchases_project.kafka_engine import PROCESSED

    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    mine = PurchaseEvent.new(username="j", userid=userid, price=Decimal("5.00"), idempotency_key="k")
    forged = dataclasses.replace(mine, userid=f"{userid}-other", price=Decimal("999.00"))
    retry = dataclasses.replace(mine, username="j2")  # the same userid: a duplicate, as before
    records = [(e.userid.encode(), e.as_message()) for e in (mine, forged, retry)]
    produce(bootstrap, topic, records, headers=[("x-request-id", b"rid-c")])
    before = {s: PROCESSED.labels(s)._value.get() for s in ("stored", "duplicate", "dead_lettered")}
    running = Running(settings_for(live_settings, topic))
    try:
        wait_for(lambda: committed(bootstrap, f"g-{topic}", topic) == 3)
    finally:
        running.stop()
    assert running.error is None
    counted = {s: PROCESSED.labels(s)._value.get() - before[s] for s in before}
    assert counted == {"stored": 1, "duplicate": 1, "dead_lettered": 1}
    letters = dead_letters(bootstrap, f"{topic}.dlq", 1)
    assert [m.value() for m in letters] == [forged.as_message()]
    headers = dict(letters[0].headers())
    assert headers["dlq-reason"] == b"purchase_id conflict" and headers["dlq-offset"] == b"1"
    errors = [
        r for r in caplog.records if r.levelname == "ERROR" and "purchase_id conflict" in r.getMessage()
    ]
    assert len(errors) == 1 and mine.purchase_id in errors[0].getMessage()
    assert selectors.user_summary_get(userid=userid) == (1, Decimal("5.00"))
    assert selectors.user_summary_get(userid=f"{userid}-other") == (0, Decimal(0))


def test_a_write_that_runs_out_of_time_is_retryable_and_stores_nothing(live_settings, userid):
    """The engine halves its chunks after such an error (purchases_project/tests/test_kafka_engine.py)."""
    writer = PurchaseWriter()
    events = [PurchaseEvent.new(username="c", userid=userid, price=Decimal("1.00")) for _ in range(3)]
    received = [Received(event, None, 0, n) for n, event in enumerate(events)]
    with pytest.raises(Retryable) as raised:
        writer.write(received, timeout_s=0.000001)  # no transaction fits in this budget
    assert raised.value.timed_out
    assert selectors.user_summary_get(userid=userid) == (0, Decimal(0))
    assert [o.status.value for o in writer.write(received, timeout_s=10)] == ["stored"] * 3


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
    from purchases_project.kafka_engine.dead_letters import FAILURES as DEAD_LETTER_FAILURES

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


def test_a_missing_topic_is_waited_for_loudly_and_never_created_by_the_consumer(
    live_settings, userid, caplog
):
    from confluent_kafka.admin import AdminClient

    from purchases_project import kafka_config

    bootstrap = live_settings.KAFKA_BOOTSTRAP_SERVERS
    topic = f"t-{uuid.uuid4().hex[:10]}"
    topics_ensure(bootstrap_servers=bootstrap, topics={f"{topic}.dlq": 1})
    admin = AdminClient(kafka_config.admin(bootstrap_servers=bootstrap))
    config = settings_for(live_settings, topic)
    # Refresh metadata every second (librdkafka's default is 5 minutes), so the test sees the
    # topic found soon after it is created.
    config["kafka"] = {**config["kafka"], "topic.metadata.refresh.interval.ms": 1000}
    running = Running(config)
    try:
        wait_for(lambda: any(topic in r.getMessage() and r.levelname == "WARNING" for r in caplog.records))
        assert running.thread.is_alive() and running.error is None
        assert topic not in admin.list_topics(timeout=10).topics  # no topic with the broker's default count

        topics_ensure(bootstrap_servers=bootstrap, topics={topic: 2})
        produce(bootstrap, topic, [good(userid)[1]])
        wait_for(lambda: selectors.user_summary_get(userid=userid)[0] == 1, timeout=60)
    finally:
        running.stop()
    assert running.error is None
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 2
