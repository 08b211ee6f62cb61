"""`manage.py rebuild_monthly_totals` as an operator runs it: a real process, a database of its own."""

import subprocess
import sys
import threading
import uuid
from decimal import Decimal

import pymongo
import pytest
from bson.decimal128 import Decimal128

from devstack.stack import ROOT
from ledger import db, services
from ledger.monthly_totals import monthly_totals_rebuild
from ledger.tests.helpers import (
    monthly_totals_match_summaries,
    purchase_at,
    summaries_match_purchases,
    unreachable_mongodb_uri,
)


def rebuild(stack, database: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "rebuild_monthly_totals"],
        cwd=ROOT,
        env=stack.env(MONGODB_DATABASE=database),
        capture_output=True,
        text=True,
        timeout=120,
    )


def months(database) -> list[tuple]:
    return sorted(
        (doc["userid"], doc["month"], doc["count"], doc["total"].to_decimal())
        for doc in database["purchases_monthly"].find()
    )


@pytest.fixture
def own_database(stack, live_settings, settings):
    """A database of this test's own, so the rebuild touches no other test's users."""
    name = f"rebuild_{uuid.uuid4().hex[:10]}"
    settings.MONGODB_DATABASE = name
    db.close()
    services.indexes_ensure()
    try:
        yield db.connect()[name]
    finally:
        db.connect().drop_database(name)
        db.close()


def test_rebuilds_the_months_from_the_purchases_and_a_second_run_changes_nothing(stack, own_database):
    database = own_database
    services.purchases_record(
        events=[
            purchase_at("ann", "2026-10-31T23:59:59.999999Z", "1.00"),
            purchase_at("ann", "2026-11-01T00:00:00.000000Z", "29.99"),
            purchase_at("ann", "2026-11-30T10:00:00.000000Z", "15.50"),
            purchase_at("bob", "2026-11-05T00:00:00.000000Z", "42.00"),
            purchase_at("cy", "2027-01-01T00:00:00.000000Z", "999999999.99"),
            purchase_at("cy", "2027-01-02T00:00:00.000000Z", "0.01"),
        ]
    )
    expected = months(database)
    assert expected == [
        ("ann", "2026-10", 1, Decimal("1.00")),
        ("ann", "2026-11", 2, Decimal("45.49")),
        ("bob", "2026-11", 1, Decimal("42.00")),
        ("cy", "2027-01", 2, Decimal("1000000000.00")),
    ]
    # Damage of every kind: a month lost (as for purchases stored before the months were
    # kept), one changed by hand, one of a month without purchases, one of an unknown user.
    monthly = database["purchases_monthly"]
    monthly.delete_one({"userid": "ann", "month": "2026-10"})
    monthly.delete_many({"userid": "cy"})
    monthly.update_one(
        {"userid": "ann", "month": "2026-11"}, {"$set": {"count": 9, "total": Decimal128("9.99")}}
    )
    monthly.insert_one(
        {"_id": "bob|2026-12", "userid": "bob", "month": "2026-12", "count": 1, "total": Decimal128("3.00")}
    )
    monthly.insert_one(
        {
            "_id": "ghost|2026-01",
            "userid": "ghost",
            "month": "2026-01",
            "count": 2,
            "total": Decimal128("2.00"),
        }
    )
    assert monthly_totals_match_summaries(database)

    first = rebuild(stack, database.name)
    assert first.returncode == 0, first.stderr
    assert f"monthly totals rebuilt on {database.name}: 4 users, 3 months written, 2 removed" in first.stdout
    assert months(database) == expected
    assert not monthly_totals_match_summaries(database) and not summaries_match_purchases(database)

    ids = sorted(doc["_id"] for doc in monthly.find())
    again = rebuild(stack, database.name)
    assert again.returncode == 0, again.stderr
    assert "3 users, 0 months written, 0 removed" in again.stdout
    assert months(database) == expected
    assert sorted(doc["_id"] for doc in monthly.find()) == ids  # not even rewritten


def test_an_empty_database_has_nothing_to_rebuild(stack, own_database):
    result = rebuild(stack, own_database.name)
    assert result.returncode == 0, result.stderr
    assert "0 users, 0 months written, 0 removed" in result.stdout


def test_an_unreachable_database_fails_with_a_clear_message(make_stack):
    env = make_stack("nothing").env(MONGODB_URI=unreachable_mongodb_uri(), MONGODB_TIMEOUT_MS="500")
    result = subprocess.run(
        [sys.executable, "manage.py", "rebuild_monthly_totals"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "monthly totals not rebuilt: ServerSelectionTimeoutError" in result.stderr


def test_a_rebuild_beside_a_storing_consumer_loses_no_purchase_at(own_database):
    """Each user's months are rebuilt in one transaction: purchases stored meanwhile are either
    in its snapshot or conflict with it (and the user is done again), never lost."""
    database = own_database
    users = [f"busy-{n}" for n in range(4)]
    months_of_purchases = ["2026-10", "2026-11", "2026-12"]
    batches = [
        [
            purchase_at(
                users[(b + i) % 4],
                f"{months_of_purchases[(b * 7 + i) % 3]}-0{1 + i}T00:00:00.000000Z",
                "1.01",
            )
            for i in range(5)
        ]
        for b in range(40)
    ]
    services.purchases_record(events=batches[0])
    database["purchases_monthly"].delete_many({})  # purchases from before the months were kept
    stored = threading.Event()
    failures: list[BaseException] = []

    def store() -> None:
        try:
            for batch in batches[1:]:
                for attempt in range(20):  # as the consumer does: the whole batch again
                    try:
                        services.purchases_record(events=batch, timeout_s=10)
                        break
                    except pymongo.errors.PyMongoError:
                        if attempt == 19:
                            raise
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            stored.set()

    writer = threading.Thread(target=store)
    writer.start()
    rebuilds = 0
    while not stored.is_set() or rebuilds < 2:
        monthly_totals_rebuild(timeout_s=10)
        rebuilds += 1
    writer.join(60)
    assert not failures, failures
    assert database["purchases"].count_documents({}) == 200
    assert not summaries_match_purchases(database)
    assert not monthly_totals_match_summaries(database), months(database)
