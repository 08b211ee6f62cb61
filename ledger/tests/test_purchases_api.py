"""GET /purchases/<userid> and /health on the ledger, in process, over the real database."""

import uuid
from decimal import Decimal

import pytest
from django.test import Client

from ledger import documents, selectors, services
from ledger.documents import PAGE_INDEX
from ledger.tests.helpers import assert_answered_from_index, database_unreachable
from purchases_project import identity
from purchases_project.events import PurchaseEvent

pytestmark = pytest.mark.urls("ledger.urls")


@pytest.fixture
def client(bearer):
    """The test client as support staff, who may read any user's purchases."""
    return Client(headers=bearer("support", scope=identity.READ_ALL_SCOPE))


def record(userid, *prices):
    events = [PurchaseEvent.new(username="john", userid=userid, price=Decimal(p)) for p in prices]
    services.purchases_record(events=events)
    return events


def test_user_purchases_with_exact_count_and_total(client, live_settings, userid):
    events = record(userid, "29.99", "15.50", "42.00")
    response = client.get(f"/purchases/{userid}")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert b'"total_spent":87.49' in response.content
    assert body["next"] is None
    assert [p["purchase_id"] for p in body["purchases"]] == [e.purchase_id for e in events]
    assert body["purchases"][1] == {
        "purchase_id": events[1].purchase_id,
        "username": "john",
        "userid": userid,
        "price": 15.5,
        "timestamp": events[1].timestamp,
    }
    assert b'"price":15.50' in response.content


def test_pages_cover_every_purchase_once_and_keep_all_time_figures(client, live_settings, userid):
    events = record(userid, *(["1.01"] * 25))
    seen, url, pages = [], f"/purchases/{userid}?limit=10", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 25
        assert Decimal(str(body["total_spent"])) == Decimal("25.25")
        seen += [p["purchase_id"] for p in body["purchases"]]
        url = body["next"]
        pages += 1
        if url:
            assert url.startswith("http://testserver/purchases/")
    assert pages == 3
    assert seen == [e.purchase_id for e in events]


def test_since_and_until_narrow_the_page_not_the_figures(client, live_settings, userid):
    events = record(userid, "1", "2", "3")
    response = client.get(
        f"/purchases/{userid}", {"since": events[1].timestamp, "until": events[2].timestamp}
    )
    body = response.json()
    assert [p["purchase_id"] for p in body["purchases"]] == [events[1].purchase_id]
    assert body["count"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=5.0",
        "cursor=%%%",
        "cursor=bm90LWpzb24",
        "since=yesterday",
    ],
)
def test_bad_parameters_are_400_with_an_error(client, live_settings, query):
    response = client.get(f"/purchases/anyone?{query}")
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert "detail" not in response.json()


def test_health_reports_the_database(client, live_settings):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "mongodb": "connected"}


def test_health_and_reads_are_503_when_the_database_is_unreachable(client, settings):
    with database_unreachable(settings):
        health = client.get("/health")
        read = client.get("/purchases/anyone")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy" and health.json()["mongodb"] == "disconnected"
    assert read.status_code == 503
    assert read.json() == {"error": "The database is unavailable"}


def test_browsable_page_renders_html(client, live_settings, userid):
    record(userid, "3.00")
    response = client.get(f"/purchases/{userid}", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content and userid.encode() in response.content


def test_page_queries_are_answered_from_the_page_index(live_settings, userid):
    services.indexes_ensure()  # as `manage.py ensure_indexes` does before the services start
    record(userid, "1", "2")
    after = ("2026-01-01T00:00:00.000000Z", "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10")
    until = "2100-01-01T00:00:00.000000Z"
    queries = selectors.page_queries(userid=userid, after=after, since=None, until=until)
    # Equality on userid, then ranges on the index's next fields, in its order.
    assert queries == [
        {"userid": userid, "timestamp": after[0], "purchase_id": {"$gt": after[1]}},
        {"userid": userid, "timestamp": {"$gt": after[0], "$lt": until}},
    ]
    first_page = selectors.page_queries(userid=userid, after=None, since=None, until=None)
    assert first_page == [{"userid": userid}]
    for query in [*queries, *first_page]:
        assert_answered_from_index(
            documents.purchases().find(query).sort(selectors.SORT).limit(11), PAGE_INDEX
        )


def test_windows_and_cursors_combine():
    ts = "2026-05-01T00:00:00.000000Z"
    before, later = "2026-01-01T00:00:00.000000Z", "2026-09-01T00:00:00.000000Z"
    # A cursor inside the window: the rest of its timestamp, then later ones.
    assert selectors.page_queries(userid="u", after=(ts, "x"), since=before, until=later) == [
        {"userid": "u", "timestamp": ts, "purchase_id": {"$gt": "x"}},
        {"userid": "u", "timestamp": {"$gt": ts, "$lt": later}},
    ]
    # A cursor before the window: the window from its start.
    assert selectors.page_queries(userid="u", after=(before, "x"), since=ts, until=None) == [
        {"userid": "u", "timestamp": {"$gte": ts}},
    ]
    # A cursor at or past the window's end: nothing of its timestamp.
    assert selectors.page_queries(userid="u", after=(later, "x"), since=None, until=later) == [
        {"userid": "u", "timestamp": {"$gt": later, "$lt": later}},
    ]


def test_paging_through_thousands_sees_each_purchase_once_with_exact_totals(client, live_settings, userid):
    events = [
        PurchaseEvent.new(username="big", userid=userid, price=Decimal(n % 10000) / 100 + Decimal("0.01"))
        for n in range(3000)
    ]
    for start in range(0, len(events), 500):
        services.purchases_record(events=events[start : start + 500])
    expected_total = sum(e.price for e in events)
    seen: list[str] = []
    url, pages = f"/purchases/{userid}?limit=1000", 0
    while url and pages < 10:
        body = client.get(url).json()
        assert body["count"] == 3000
        assert Decimal(str(body["total_spent"])) == expected_total
        seen += [p["purchase_id"] for p in body["purchases"]]
        url, pages = body["next"], pages + 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 3000
    assert seen == [e.purchase_id for e in sorted(events, key=lambda e: (e.timestamp, e.purchase_id))]


def test_purchases_with_the_same_timestamp_page_by_purchase_id(client, live_settings, userid):
    moment = "2026-03-01T12:00:00.000000Z"
    events = [
        PurchaseEvent(
            purchase_id=str(uuid.uuid4()),
            username="t",
            userid=userid,
            price=Decimal("1.00"),
            timestamp=moment,
        )
        for _ in range(7)
    ]
    services.purchases_record(events=events)
    seen, url = [], f"/purchases/{userid}?limit=3"
    while url:
        body = client.get(url).json()
        seen += [p["purchase_id"] for p in body["purchases"]]
        url = body["next"]
    assert seen == sorted(e.purchase_id for e in events)


def test_a_bad_parameter_in_a_browser_gets_the_browsable_error_page(client, live_settings):
    page = client.get("/purchases/anyone?limit=0", HTTP_ACCEPT="text/html")
    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")
    assert b"limit" in page.content
    as_json = client.get("/purchases/anyone?limit=0", HTTP_ACCEPT="application/json")
    assert as_json.status_code == 400 and "limit" in as_json.json()["error"]


def test_a_customer_reads_their_own_purchases_only(live_settings, bearer, userid):
    record(userid, "2.00")
    customer = Client(headers=bearer(userid))
    own = customer.get(f"/purchases/{userid}")
    assert own.status_code == 200 and own.json()["count"] == 1
    other = customer.get(f"/purchases/{userid}-other")
    assert other.status_code == 403 and "error" in other.json()


def test_the_ledger_refuses_a_request_without_a_token():
    response = Client().get("/purchases/anyone")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="purchases"'
    assert response.json() == {"error": "A bearer token is required"}


def private(response) -> bool:
    """No cache keeps the answer, and a shared one tells customers apart by token and session."""
    vary = {name.strip().lower() for name in response.get("Vary", "").split(",")}
    return response.get("Cache-Control") == "no-store" and {"authorization", "cookie"} <= vary


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_purchases_are_never_cached_and_vary_by_token_and_session(
    client, live_settings, bearer, userid, accept
):
    record(userid, "4.00")
    response = client.get(f"/purchases/{userid}", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(accept)
    assert private(response), dict(response.headers)
    refused = Client(headers=bearer("someone-else")).get(f"/purchases/{userid}", HTTP_ACCEPT=accept)
    assert refused.status_code == 403 and private(refused)


def test_newest_first_pages_cover_every_purchase_once(client, live_settings, userid):
    events = record(userid, *(["1.01"] * 25))
    moment = "2026-03-01T12:00:00.000000Z"  # ties on the timestamp page by purchase_id, backwards
    ties = [
        PurchaseEvent(
            purchase_id=str(uuid.uuid4()), username="t", userid=userid, price=Decimal(1), timestamp=moment
        )
        for _ in range(5)
    ]
    services.purchases_record(events=ties)
    everything = sorted([*events, *ties], key=lambda e: (e.timestamp, e.purchase_id), reverse=True)
    seen, url, pages = [], f"/purchases/{userid}?limit=4&order=desc", 0
    while url:
        body = client.get(url).json()
        assert (body["count"], Decimal(str(body["total_spent"]))) == (30, Decimal("30.25"))
        seen += [p["purchase_id"] for p in body["purchases"]]
        url, pages = body["next"], pages + 1
        if url:
            assert "order=desc" in url and url.split("cursor=")[1].endswith("_desc")
    assert pages == 8
    assert seen == [e.purchase_id for e in everything]


def test_a_cursor_keeps_its_order_whatever_order_says(client, live_settings, userid):
    events = record(userid, "1", "2", "3", "4")
    first = client.get(f"/purchases/{userid}?limit=2&order=desc").json()
    cursor = first["next"].split("cursor=")[1]
    # The newest-first cursor sent with order=asc: still newest first, and its next link says so.
    rest = client.get(f"/purchases/{userid}", {"limit": 1, "order": "asc", "cursor": cursor}).json()
    assert [p["purchase_id"] for p in rest["purchases"]] == [events[1].purchase_id]
    assert "order=desc" in rest["next"]
    # And the other way round.
    first = client.get(f"/purchases/{userid}?limit=2").json()
    cursor = first["next"].split("cursor=")[1]
    rest = client.get(f"/purchases/{userid}", {"order": "desc", "cursor": cursor}).json()
    assert [p["purchase_id"] for p in rest["purchases"]] == [e.purchase_id for e in events[2:]]


def test_newest_first_within_since_and_until(client, live_settings, userid):
    events = record(userid, "1", "2", "3", "4")
    window = {"since": events[1].timestamp, "until": events[3].timestamp, "order": "desc", "limit": 1}
    body = client.get(f"/purchases/{userid}", window).json()
    assert [p["purchase_id"] for p in body["purchases"]] == [events[2].purchase_id]
    body = client.get(body["next"]).json()
    assert [p["purchase_id"] for p in body["purchases"]] == [events[1].purchase_id]
    assert body["next"] is None


@pytest.mark.parametrize("query", ["order=", "order=DESC", "order=newest", "order=asc%20"])
def test_an_unknown_order_is_400(client, live_settings, query):
    response = client.get(f"/purchases/anyone?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "order: must be asc (oldest first) or desc (newest first)"


def test_newest_first_page_queries_are_answered_from_the_page_index(live_settings, userid):
    record(userid, "1", "2")
    after = ("2026-01-01T00:00:00.000000Z", "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10")
    since = "2000-01-01T00:00:00.000000Z"
    queries = selectors.page_queries(userid=userid, after=after, since=since, until=None, order="desc")
    # Equality on userid, then ranges on the index's next fields, walked backwards.
    assert queries == [
        {"userid": userid, "timestamp": after[0], "purchase_id": {"$lt": after[1]}},
        {"userid": userid, "timestamp": {"$gte": since, "$lt": after[0]}},
    ]
    assert selectors.SORTS["desc"] == [("timestamp", -1), ("purchase_id", -1)]
    first_page = selectors.page_queries(userid=userid, after=None, since=None, until=None, order="desc")
    assert first_page == [{"userid": userid}]
    for query in [*queries, *first_page]:
        page = documents.purchases().find(query).sort(selectors.SORTS["desc"]).limit(11)
        assert_answered_from_index(page, PAGE_INDEX)


def test_newest_first_windows_and_cursors_combine():
    ts = "2026-05-01T00:00:00.000000Z"
    before, later = "2026-01-01T00:00:00.000000Z", "2026-09-01T00:00:00.000000Z"

    def queries(after, since, until):
        return selectors.page_queries(userid="u", after=after, since=since, until=until, order="desc")

    # A cursor inside the window: the rest of its timestamp, then earlier ones down to the start.
    assert queries((ts, "x"), before, later) == [
        {"userid": "u", "timestamp": ts, "purchase_id": {"$lt": "x"}},
        {"userid": "u", "timestamp": {"$gte": before, "$lt": ts}},
    ]
    # A cursor after the window: the window from its end.
    assert queries((later, "x"), None, ts) == [{"userid": "u", "timestamp": {"$lt": ts}}]
    # A cursor before the window's start: nothing of its timestamp.
    assert queries((before, "x"), ts, None) == [{"userid": "u", "timestamp": {"$gte": ts, "$lt": before}}]
