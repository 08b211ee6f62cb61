"""Break real processes and check that every purchase answered 201 is stored exactly once.

Each test starts a stack of its own (never the shared one), on free ports of
127.0.0.1, with the database synced on commit; every process is stopped by PID
when the test ends. Loads are bounded in count and time.
"""

import json
import signal
import subprocess
import time
from decimal import Decimal

import pytest
from confluent_kafka import Consumer, Producer

from devstack.stack import wait_until
from purchases_project.events import PurchaseEvent
from tests.support import http, kafka
from tests.support.load import Load, assert_stored_exactly_once
from tests.support.metrics import has, sample_value, samples, scrape, total
from tests.support.processes import run_python

pytestmark = pytest.mark.slow


def post(stack, body, timeout=10):
    """POST /buy as the customer the body names, with a token of the stack's issuer: (status, JSON)."""
    response = http.post(
        f"{stack.storefront_url}/buy", json=body, token=stack.issuer.token(body["userid"]), timeout=timeout
    )
    return response.status_code, response.json()


def replay_dlq(stack) -> subprocess.CompletedProcess:
    return run_python("manage.py", "replay_dlq", "--idle-timeout", "3", env=stack.env(), timeout=120)


def consumer_metric(stack, name: str, **labels: str) -> float:
    """One sample of the consumer's /metrics (0.0 while the series is not there)."""
    return sample_value(scrape(stack.ports.consumer_metrics), name, **labels)


def lag_exposed(stack) -> bool:
    return has(scrape(stack.ports.consumer_metrics), "kafka_consumer_lag")


def committed_total(stack, group="purchase-consumer-group", topic="purchases") -> int:
    offsets = kafka.committed(stack.bootstrap, group, topic, list(range(stack.partitions)))
    return sum(max(offset, 0) for offset in offsets.values())


def assert_money_as_sent(stack, load: Load) -> None:
    """Every purchase answered 201 is stored with the userid and price its client sent, and,
    when every request was answered 201 (no unknown outcome), each customer's summary is the
    count and exact sum of what that customer sent."""
    accepted = load.accepted
    with stack.mongo() as client:
        database = client[stack.database]
        stored = {
            doc["purchase_id"]: (doc["userid"], doc["price"].to_decimal())
            for doc in database["purchases"].find({"purchase_id": {"$in": list(accepted)}})
        }
        assert stored == accepted
        if set(load.statuses) != {201}:
            return
        sent: dict[str, tuple[int, Decimal]] = {}
        for userid, price in accepted.values():
            count, total = sent.get(userid, (0, Decimal(0)))
            sent[userid] = (count + 1, total + price)
        summaries = {
            doc["_id"]: (doc["count"], doc["total"].to_decimal())
            for doc in database["purchases_user_summaries"].find({"_id": {"$in": list(sent)}})
        }
        assert summaries == sent


def test_consumer_killed_mid_load_loses_and_doubles_nothing(make_stack):
    stack = make_stack("kill-consumer")
    stack.start_all()
    load = Load(stack, count=3000).start()
    load.wait_accepted(1000)
    stack.procs["consumer"].kill()  # SIGKILL: whatever was not committed is delivered again
    load.wait_accepted(len(load.accepted) + 300)  # a backlog builds while no consumer runs
    stack.start_consumer()
    load.join()
    assert load.statuses[201] == 3000, load.statuses
    assert_stored_exactly_once(stack, load.accepted)
    assert_money_as_sent(stack, load)


def test_database_outage_during_load_is_ridden_out_without_losing_the_group(make_stack):
    # A max poll interval shorter than the outage: the consumer must keep polling while it holds.
    stack = make_stack("db-outage", extra_env={"KAFKA_MAX_POLL_INTERVAL_MS": "6000"})
    alive = stack.workdir / "consumer-alive"
    stack.extra_env["CONSUMER_LIVENESS_FILE"] = str(alive)
    stack.start_all()
    load = Load(stack, count=2500, threads=3).start()
    load.wait_accepted(500)
    stack.procs["mongo"].stop()
    outage_started = time.monotonic()

    health = http.get(f"{stack.ledger_url}/health")
    status, body = health.status_code, health.json()
    assert (status, body["status"], body["mongodb"]) == (503, "unhealthy", "disconnected")
    # Purchases keep being accepted (the storefront never touches MongoDB) and the lag
    # metric stays live while the consumer holds its batch.
    wait_until(lambda: lag_exposed(stack), 10, "lag series")
    time.sleep(max(0.0, 8.0 - (time.monotonic() - outage_started)))
    during = scrape(stack.ports.consumer_metrics)
    # The loop proves it is alive while it holds the batch: it touches the file again, during
    # the outage (between two touches: at most one attempt's budget, 4 s, on a busy machine
    # a little more; the probe allows 60 s).
    touched = alive.stat().st_mtime
    wait_until(lambda: alive.stat().st_mtime > touched, 20, "the liveness file touched while holding")
    assert sample_value(during, "kafka_consumer_batch_retries_total") > 0
    assert sample_value(during, "kafka_consumer_held_messages") > 0
    assert lag_exposed(stack)
    assert sample_value(during, "kafka_messages_processed_total", status="dead_lettered") == 0

    # The lag rose while the batch was held (the series came from the consumer's statistics;
    # scraping never creates one).
    assert total(during, "kafka_consumer_lag") > 0

    stack.start_mongo()
    load.join()
    assert load.statuses[201] == 2500, load.statuses
    assert_stored_exactly_once(stack, load.accepted)
    assert_money_as_sent(stack, load)
    assert http.get(f"{stack.ledger_url}/health").status_code == 200

    def lag_back_to_zero() -> bool:
        found = samples(scrape(stack.ports.consumer_metrics), "kafka_consumer_lag", topic="purchases")
        return len(found) == stack.partitions and all(value == 0 for _, value in found)

    wait_until(lag_back_to_zero, 30, "the lag of every partition back to 0")

    # One outcome per event: a held event counts once, never as failed and then stored. (An
    # attempt whose commit outlived its time budget on the client counts its events as
    # duplicates on the retry that finds them.)
    def outcomes() -> dict[str, float]:
        text = scrape(stack.ports.consumer_metrics)
        return {
            s: sample_value(text, "kafka_messages_processed_total", status=s)
            for s in ("stored", "duplicate", "failed")
        }

    counted = wait_until(lambda: (o := outcomes())["stored"] + o["duplicate"] >= 2500 and o, 30, "outcomes")
    assert counted["stored"] + counted["duplicate"] == 2500 and counted["failed"] == 0, counted
    # Each write attempt is bounded, so the loop never went longer than the poll interval
    # (6 s) without polling.
    poll_gap = consumer_metric(stack, "kafka_consumer_max_poll_gap_seconds")
    assert 0 < poll_gap < 6.0, poll_gap
    log = stack.procs["consumer"].output()
    assert "revoked partitions" not in log, "the consumer lost its group membership during the outage"


def consumer_holding_a_batch(make_stack, name: str, count: int, **stack_options):
    """A stack whose consumer has committed one purchase, then holds `count` more while the
    database is away. Returns the stack and the load whose purchases are held."""
    stack = make_stack(name, **stack_options)
    stack.start_all()
    assert post(stack, {"username": "a", "userid": "before", "price": 1})[0] == 201
    wait_until(lambda: committed_total(stack) == 1, 30, "first purchase committed")
    stack.procs["mongo"].stop()
    held = Load(stack, count=count, threads=2).start().join()
    assert held.statuses[201] == count, held.statuses
    wait_until(lambda: consumer_metric(stack, "kafka_consumer_held_messages") > 0, 30, "the batch held")
    assert consumer_metric(stack, "kafka_consumer_batch_retries_total") > 0
    return stack, held


def restart_and_check(stack, held) -> None:
    """The database back and a new consumer: the held purchases are delivered again, stored once."""
    stack.start_mongo()
    stack.start_consumer()
    assert_stored_exactly_once(stack, held.accepted)
    assert_money_as_sent(stack, held)


def test_warm_shutdown_gives_up_without_committing_when_the_database_is_away(make_stack):
    stack, held = consumer_holding_a_batch(
        make_stack, "shutdown-db-away", 50, extra_env={"CONSUMER_SHUTDOWN_TIMEOUT_S": "3"}
    )
    consumer = stack.procs["consumer"]
    consumer.signal(signal.SIGTERM)
    started = time.monotonic()
    assert consumer.popen.wait(30) != 0
    assert time.monotonic() - started < 15
    assert "exiting without committing" in consumer.output()
    assert committed_total(stack) == 1
    restart_and_check(stack, held)


def test_a_second_signal_is_a_cold_shutdown_that_commits_nothing(make_stack):
    stack, held = consumer_holding_a_batch(make_stack, "cold-shutdown", 20)
    consumer = stack.procs["consumer"]
    consumer.signal(signal.SIGTERM)
    wait_until(lambda: "warm shutdown" in consumer.output(), 10, "the first signal taken")
    consumer.signal(signal.SIGINT)
    started = time.monotonic()
    assert consumer.popen.wait(10) != 0
    assert time.monotonic() - started < 3
    assert "cold shutdown" in consumer.output()
    assert committed_total(stack) == 1
    restart_and_check(stack, held)


def test_sigterm_to_the_consumer_and_the_storefront_loses_nothing_answered(make_stack):
    stack = make_stack("sigterm")
    stack.start_all()
    load = Load(stack, count=4000, threads=4).start()
    load.wait_accepted(800)
    # Stopped before it has joined its group, the consumer would leave the local broker's
    # group stuck in a join (the storefront can accept 800 purchases in under a second).
    with stack.mongo() as client:
        purchases = client[stack.database]["purchases"]
        wait_until(lambda: purchases.estimated_document_count() > 0, 60, "the consumer storing")
    assert stack.procs["consumer"].stop() == 0  # warm shutdown: write, commit, exit 0
    assert "consumer stopped" in stack.procs["consumer"].output()
    stack.start_consumer()
    load.wait_accepted(2000)
    # A rollout of the storefront: in-flight requests finish, the producer is flushed.
    assert load.errors == [], load.errors[:3]
    sigterm_at = time.monotonic()
    assert stack.procs["storefront"].stop() == 0
    load.stop()
    load.join()
    # Every request was answered 201 until the signal; after it, only requests the stopped
    # server could no longer take failed, never with a 5xx,
    assert set(load.statuses) <= {201, "error"}, load.statuses
    assert all(at >= sigterm_at for at, _ in load.errors), load.errors[:3]
    # and none was cut off mid-answer: each failed to connect, or was sent on a kept-alive
    # connection just as the stopping server closed it (HTTP's keep-alive race: no answer
    # began), never a connection reset or a truncated answer.
    closed_unanswered = ("NewConnectionError", "Remote end closed connection without response")
    assert all(any(c in error for c in closed_unanswered) for _, error in load.errors), load.errors[:3]
    assert_stored_exactly_once(stack, load.accepted)
    assert_money_as_sent(stack, load)


def test_broker_outage_answers_503_fast_and_recovers(make_stack):
    # A publish deadline well inside the contract's 2 s, so a busy machine's scheduling delays
    # cannot fail the bound (the default, 1.5 s, leaves only 0.5 s for them).
    stack = make_stack("broker-outage", extra_env={"KAFKA_PUBLISH_TIMEOUT_S": "0.5"})
    stack.start_infra()
    stack.start_web("storefront")
    # The producer's first send waits for its producer id, which may outlast the short deadline.
    wait_until(
        lambda: post(stack, {"username": "a", "userid": "b", "price": 1})[0] == 201, 30, "a first purchase"
    )

    stack.procs["broker"].stop()
    for _ in range(3):
        started = time.monotonic()
        status, body = post(stack, {"username": "a", "userid": "b", "price": 1})
        assert status == 503, body
        assert "broker" in body["error"]
        assert time.monotonic() - started < 2.0

    # The memory broker forgot everything: the topics come back, with their partition
    # count, before any client reconnects (our clients never auto-create a topic).
    stack.start_broker()
    stack.create_topics()

    def accepted():
        return post(stack, {"username": "a", "userid": "b", "price": 2})[0] == 201

    wait_until(accepted, 30, "POST /buy answered 201 again", interval=0.5)
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "check"})
    try:
        assert len(consumer.list_topics(timeout=10).topics["purchases"].partitions) == stack.partitions == 3
    finally:
        consumer.close()
    text = scrape(stack.ports.storefront_metrics)
    assert sample_value(text, "purchases_published_total", outcome="failed") >= 1


def test_malformed_events_are_dead_lettered_and_replayed_after_a_fix(make_stack):
    stack = make_stack("poison")
    stack.start_all()
    producer = Producer({"bootstrap.servers": stack.bootstrap, "partitioner": "murmur2_random"})
    good = [PurchaseEvent.new(username="p", userid="poison-user", price=p) for p in (1, 2, 3)]
    records = [
        (good[0].as_message(), b"poison-user"),
        (b"{broken json", b"poison-user"),
        (good[1].as_message(), b"poison-user"),
        (json.dumps({"schema_version": 1, "userid": "poison-user"}).encode(), b"poison-user"),
        (good[2].as_message(), b"poison-user"),
    ]
    for value, key in records:
        producer.produce("purchases", key=key, value=value)
    assert producer.flush(10) == 0
    assert_stored_exactly_once(stack, {e.purchase_id: ("poison-user", e.price) for e in good})
    wait_until(
        lambda: consumer_metric(stack, "kafka_messages_processed_total", status="dead_lettered") == 2,
        20,
        "two dead letters counted",
    )

    # A fix (say, a consumer that understands a newer event) makes a dead letter valid:
    # here, a valid event that landed in the dead-letter topic.
    fixed = PurchaseEvent.new(username="p", userid="poison-user", price=7)
    producer.produce(
        "purchases.dlq",
        key=b"poison-user",
        value=fixed.as_message(),
        headers=[("dlq-reason", b"unsupported schema_version 2")],
    )
    assert producer.flush(10) == 0
    replay = replay_dlq(stack)
    assert replay.returncode == 0, replay.stderr
    assert "replayed 1 events" in replay.stdout and "left 2 still invalid" in replay.stdout
    assert_stored_exactly_once(stack, {e.purchase_id: ("poison-user", e.price) for e in [*good, fixed]})
    # Run again: offsets stay at the first event left, so the still-invalid ones are seen again
    # and the valid one after them is re-sent; the consumer finds it stored and counts a
    # duplicate, and nothing changes in the database.
    duplicates = consumer_metric(stack, "kafka_messages_processed_total", status="duplicate")
    again = replay_dlq(stack)
    assert again.returncode == 0, again.stderr
    assert "replayed 1 events" in again.stdout and "left 2 still invalid" in again.stdout, again.stdout
    wait_until(
        lambda: consumer_metric(stack, "kafka_messages_processed_total", status="duplicate")
        == duplicates + 1,
        30,
        "the re-sent event counted as a duplicate",
    )
    replays = kafka.read(
        stack.bootstrap,
        "purchases",
        until=lambda found: sum(m.value() == fixed.as_message() for m in found) >= 2,
        timeout=15,
    )
    copies = [m for m in replays if m.value() == fixed.as_message()]
    assert len(copies) == 2 and all(dict(m.headers() or [])["dlq-replayed-from"] for m in copies)
    assert_stored_exactly_once(stack, {e.purchase_id: ("poison-user", e.price) for e in [*good, fixed]})
    with stack.mongo() as client:
        summary = client[stack.database]["purchases_user_summaries"].find_one({"_id": "poison-user"})
    assert (summary["count"], summary["total"].to_decimal()) == (4, Decimal("13.00"))


def test_two_consumers_of_one_group_under_load_take_partitions_from_a_held_batch(make_stack):
    """A second consumer joins while the first holds a batch (the database frozen with SIGSTOP):
    the group rebalances, the first loses partitions whose events it holds, and every purchase
    is still stored exactly once, by whichever consumer owns its partition then."""
    stack = make_stack("two-consumers")
    stack.start_all()
    first = stack.procs["consumer"]
    load = Load(stack, count=3000, threads=3).start()
    load.wait_accepted(300)
    mongo = stack.procs["mongo"]
    try:
        mongo.signal(signal.SIGSTOP)
        wait_until(lambda: consumer_metric(stack, "kafka_consumer_held_messages") > 0, 30, "a batch held")
        second = stack.start_consumer("consumer-2")
        wait_until(
            lambda: "revoked partitions" in first.output(), 60, "the first consumer's partitions revoked"
        )
        wait_until(
            lambda: "assigned partitions [" in second.output(), 60, "partitions assigned to the second"
        )
        wait_until(
            lambda: "held messages of revoked partitions to their new owner" in first.output(),
            30,
            "partitions revoked while the first consumer held their events",
        )
    finally:
        mongo.signal(signal.SIGCONT)
    load.join()
    assert load.statuses[201] == 3000, load.statuses
    assert_stored_exactly_once(stack, load.accepted)
    assert_money_as_sent(stack, load)
    assert "stored purchase" in second.output()
    assert first.alive() and second.alive()
