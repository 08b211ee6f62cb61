"""GET /spending/<userid> on the ledger, in process, over the real database."""

import pytest
from bson.decimal128 import Decimal128
from django.test import Client

from ledger import db, documents, services
from ledger.documents import MONTH_INDEX
from ledger.tests.helpers import (
    assert_answered_from_index,
    database_unreachable,
    monthly_totals_match_summaries,
    stored_purchases,
)
from purchases_project import identity

pytestmark = pytest.mark.urls("ledger.urls")


@pytest.fixture
def client(bearer):
    """The test client as support staff, who may read any user's spending."""
    return Client(headers=bearer("support", scope=identity.READ_ALL_SCOPE))


@pytest.fixture
def database(live_settings):
    return db.connect()[live_settings.MONGODB_DATABASE]


HISTORY = (
    ("2026-09-30T23:59:59.999999Z", "5.00"),
    ("2026-11-01T00:00:00.000000Z", "29.99"),
    ("2026-11-15T12:00:00.000000Z", "15.50"),
    ("2026-11-30T23:59:59.999999Z", "42.00"),
    ("2027-01-01T00:00:00.000000Z", "0.01"),
)


def test_spending_per_utc_month_oldest_first_with_exact_totals(client, live_settings, database, userid):
    stored_purchases(userid, *HISTORY)
    response = client.get(f"/spending/{userid}")
    assert response.status_code == 200
    assert response.json() == {
        "userid": userid,
        "months": [
            {"month": "2026-09", "count": 1, "total": 5},
            {"month": "2026-11", "count": 3, "total": 87.49},
            {"month": "2027-01", "count": 1, "total": 0.01},
        ],
        "count": 5,
        "total_spent": 92.5,
    }
    # Numbers written from the exact decimal, as total_spent on the list endpoints.
    assert b'"total":87.49' in response.content and b'"total_spent":92.50' in response.content
    assert not monthly_totals_match_summaries(database)


def test_since_and_until_narrow_the_months_not_the_all_time_figures(client, live_settings, userid):
    stored_purchases(userid, *HISTORY)
    body = client.get(f"/spending/{userid}", {"since": "2026-10", "until": "2027-01"}).json()
    assert [m["month"] for m in body["months"]] == ["2026-11"]
    assert (body["count"], body["total_spent"]) == (5, 92.5)
    assert client.get(f"/spending/{userid}", {"since": "2026-11"}).json()["months"][0]["month"] == "2026-11"
    assert [m["month"] for m in client.get(f"/spending/{userid}", {"until": "2026-11"}).json()["months"]] == [
        "2026-09"
    ]
    assert client.get(f"/spending/{userid}", {"since": "2027-02", "until": "2026-01"}).json()["months"] == []


def test_a_user_without_purchases_has_no_months(client, live_settings):
    response = client.get("/spending/nobody-ever-bought")
    assert response.status_code == 200
    assert response.json() == {"userid": "nobody-ever-bought", "months": [], "count": 0, "total_spent": 0}


def test_duplicates_never_count_twice(client, live_settings, database, userid):
    events = stored_purchases(userid, *HISTORY)
    services.purchases_record(events=events)  # redelivered
    services.purchases_record(
        events=[events[1], *stored_purchases(userid, ("2026-11-02T08:00:00.000000Z", "0.01"))]
    )
    body = client.get(f"/spending/{userid}").json()
    assert body["months"][1] == {"month": "2026-11", "count": 4, "total": 87.5}
    assert (body["count"], body["total_spent"]) == (6, 92.51)
    assert not monthly_totals_match_summaries(database)
    # One document per user and month, whose _id is the pair (upserts cannot make a second).
    november = list(database["purchases_monthly"].find({"userid": userid, "month": "2026-11"}))
    assert [doc["_id"] for doc in november] == [f"{userid}|2026-11"]


def test_the_answer_reads_the_monthly_totals_not_the_purchases(client, live_settings, database, userid):
    stored_purchases(userid, *HISTORY)
    before = client.get(f"/spending/{userid}").json()
    try:
        # Without its purchases, the answer is the same: it never reads them.
        database["purchases"].delete_many({"userid": userid})
        assert client.get(f"/spending/{userid}").json() == before
        # A monthly document changed by hand: the answer follows it.
        database["purchases_monthly"].update_one(
            {"userid": userid, "month": "2026-11"}, {"$set": {"count": 7, "total": Decimal128("100.00")}}
        )
        after = client.get(f"/spending/{userid}")
        assert after.json()["months"][1] == {"month": "2026-11", "count": 7, "total": 100}
        assert after.json()["count"] == 9 and b'"total_spent":105.01' in after.content
    finally:
        # The other tests check that every user's figures agree: leave none of this user's.
        database["purchases_user_summaries"].delete_one({"_id": userid})
        database["purchases_monthly"].delete_many({"userid": userid})


def test_the_months_are_read_from_their_index(live_settings, database, userid):
    stored_purchases(userid, *HISTORY)
    services.indexes_ensure()
    monthly = documents.monthly()
    assert monthly.index_information()[MONTH_INDEX]["key"] == [("userid", 1), ("month", 1)]
    assert monthly.index_information()[MONTH_INDEX]["unique"] is True
    assert_answered_from_index(monthly.find({"userid": userid}).sort("month", 1), MONTH_INDEX)


@pytest.mark.parametrize(
    "query",
    ["since=2026-13", "since=2026-1", "until=26-11", "since=", "until=2026-11-01", "since=2026%E2%80%9311"],
)
def test_a_malformed_month_is_400_with_a_clear_error(client, live_settings, query):
    response = client.get(f"/spending/anyone?{query}")
    assert response.status_code == 400
    field = query.split("=")[0]
    assert response.json()["error"] == f"{field}: must be a month as YYYY-MM, e.g. 2026-11"


def test_a_customer_reads_their_own_spending_only(live_settings, bearer, userid):
    stored_purchases(userid, ("2026-11-01T00:00:00.000000Z", "2.00"))
    customer = Client(headers=bearer(userid))
    own = customer.get(f"/spending/{userid}")
    assert own.status_code == 200 and own.json()["count"] == 1
    other = customer.get(f"/spending/{userid}-other")
    assert other.status_code == 403 and "error" in other.json()
    # The request is checked before ownership: a bad month is a 400 whoever asks.
    assert customer.get(f"/spending/{userid}-other?since=x").status_code == 400
    anonymous = Client().get(f"/spending/{userid}")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="purchases"'


def test_spending_is_never_cached_nor_shared(client, live_settings, userid):
    for response in (client.get(f"/spending/{userid}"), Client().get(f"/spending/{userid}")):
        assert response["Cache-Control"] == "no-store"
        assert {"Authorization", "Cookie"} <= {v.strip() for v in response["Vary"].split(",")}


def test_spending_is_503_when_the_database_is_unreachable(client, settings):
    with database_unreachable(settings):
        response = client.get("/spending/anyone")
    assert response.status_code == 503
    assert response.json() == {"error": "The database is unavailable"}


def test_the_browsable_page_renders(client, live_settings, userid):
    stored_purchases(userid, ("2026-11-01T00:00:00.000000Z", "3.00"))
    response = client.get(f"/spending/{userid}", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content and b"2026-11" in response.content
