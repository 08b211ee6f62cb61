"""Storing purchases exactly once, with summaries that never drift (real database)."""

import time
from decimal import Decimal

import pymongo
import pytest

from ledger import db, selectors, services
from ledger.tests.helpers import monthly_totals_match_summaries, summaries_match_purchases
from purchases_project.events import PurchaseEvent


def event(userid, price, **kwargs):
    return PurchaseEvent.new(username="john", userid=userid, price=Decimal(price), **kwargs)


@pytest.fixture
def database(live_settings):
    return db.connect()[live_settings.MONGODB_DATABASE]


def test_record_stores_new_events_and_counts_them_once(database, userid):
    events = [event(userid, "29.99"), event(userid, "15.50"), event(userid, "42.00")]
    first = services.purchases_record(events=events)
    assert (first.stored_ids, first.duplicates) == ({e.purchase_id for e in events}, 0)
    # Redelivered, alone and mixed with a new one: only the new one counts.
    again = services.purchases_record(events=events)
    assert (again.stored, again.duplicates) == (0, 3)
    late = event(userid, "0.01")
    mixed = services.purchases_record(events=[events[0], late])
    assert (mixed.stored_ids, mixed.duplicates) == ({late.purchase_id}, 1)
    assert selectors.user_summary_get(userid=userid) == (4, Decimal("87.50"))
    assert database["purchases"].count_documents({"userid": userid}) == 4
    assert not summaries_match_purchases(database)
    spending = selectors.user_spending_get(userid=userid)
    assert (spending.count, spending.total) == (4, Decimal("87.50"))
    assert sum(month["count"] for month in spending.months) == 4
    assert not monthly_totals_match_summaries(database)


def test_the_first_of_two_events_with_one_purchase_id_wins(database, userid):
    first = event(userid, "1.00", idempotency_key="k")
    second = event(userid, "2.00", idempotency_key="k")
    assert first.purchase_id == second.purchase_id
    assert services.purchases_record(events=[first, second]).stored == 1
    assert services.purchases_record(events=[second]).stored == 0
    stored = database["purchases"].find_one({"purchase_id": first.purchase_id})
    assert stored["price"].to_decimal() == Decimal("1.00")
    assert selectors.user_summary_get(userid=userid) == (1, Decimal("1.00"))


def test_totals_stay_exact_far_beyond_float_precision(database, userid):
    events = [event(userid, "999999999.99") for _ in range(200)] + [event(userid, "0.01")]
    services.purchases_record(events=events)
    count, total = selectors.user_summary_get(userid=userid)
    assert (count, total) == (201, Decimal("199999999998.01"))
    assert not summaries_match_purchases(database)
    assert selectors.user_spending_get(userid=userid).total == Decimal("199999999998.01")
    assert not monthly_totals_match_summaries(database)


def test_purchases_have_a_unique_purchase_id_index(database):
    services.indexes_ensure()
    indexes = database["purchases"].index_information()
    unique = [i for i in indexes.values() if i.get("unique")]
    assert [("purchase_id", 1)] in [i["key"] for i in unique]
    assert indexes["userid_timestamp_purchase_id"]["key"] == [
        ("userid", 1),
        ("timestamp", 1),
        ("purchase_id", 1),
    ]
    monthly = database["purchases_monthly"].index_information()["userid_month"]
    assert (monthly["key"], monthly["unique"]) == ([("userid", 1), ("month", 1)], True)


def test_a_failed_attempt_leaves_no_transaction_holding_the_summaries(database, userid):
    """An attempt whose time budget runs out mid-transaction must not leave the transaction
    open on the server (pymongo's abort, inside the spent budget, is never sent): the retry
    would fail on a write conflict until the server's transaction lifetime ends."""
    services.purchases_record(events=[event(userid, "1.00")])
    client = db.connect()
    summaries = services.UserSummary._get_collection()
    with pytest.raises(pymongo.errors.PyMongoError), client.start_session() as session:
        with services._session_ended_on_the_server_on_failure(client, session):
            with pymongo.timeout(0.5), session.start_transaction():
                summaries.update_one({"_id": userid}, {"$inc": {"count": 100}}, session=session)
                time.sleep(0.6)  # the attempt's budget runs out while the transaction is open
                summaries.find_one({"_id": userid}, session=session)
    retry = services.purchases_record(events=[event(userid, "2.00")], timeout_s=5)
    assert retry.stored == 1
    assert selectors.user_summary_get(userid=userid) == (2, Decimal("3.00"))
