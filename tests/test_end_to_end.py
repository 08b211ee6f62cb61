"""The contract's walk-through against the shared stack: real storefront and ledger
processes, a real `consume_purchases`, the real broker and database, over HTTP, each
request with a bearer token of the stack's issuer."""

import json
import re
import time
from decimal import Decimal
from urllib.parse import quote

import pytest

from devstack.stack import wait_until
from tests.support.http import request
from tests.support.load import where_missing
from tests.support.metrics import has, scrape
from tests.support.processes import run_python


def call(method, url, body=None, headers=None, raw=None):
    """(status, body bytes, headers): a JSON `body`, or a `raw` one as it is."""
    json_body = {} if body is None else {"json": body}
    response = request(method, url, data=raw, headers=headers, **json_body)
    return response.status_code, response.content, response.headers


def get_json(url, headers):
    response = request("GET", url, headers=headers)
    return response.status_code, response.json(parse_float=Decimal)


def wait_for_count(stack, userid, count, headers, timeout=30.0):
    def ready():
        status, body = get_json(f"{stack.storefront_url}/getAllUserBuys/{userid}", headers)
        return body if status == 200 and body["count"] == count else None

    return wait_until(ready, timeout, f"{count} purchases of {userid}", interval=0.1)


def test_three_purchases_total_exactly_and_users_stay_apart(stack, userid, bearer):
    other = f"{userid}-other"
    answers = []
    for price in (29.99, 15.50, 42.00):
        status, body, headers = call(
            "POST",
            f"{stack.storefront_url}/buy",
            {"username": "john", "userid": userid, "price": price},
            headers=bearer(userid),
        )
        assert status == 201, body
        answers.append(json.loads(body)["data"])
        assert headers["X-Request-ID"]
    status, _, _ = call(
        "POST",
        f"{stack.storefront_url}/buy",
        {"username": "jane", "userid": other, "price": "1.00"},
        headers=bearer(other),
    )
    assert status == 201

    body = wait_for_count(stack, userid, 3, bearer(userid))
    assert body["total_spent"] == Decimal("87.49")
    assert body["purchases"] == [
        {**a, "price": Decimal(str(a["price"])).quantize(Decimal("0.01"))} for a in answers
    ]
    assert body["next"] is None
    other_body = wait_for_count(stack, other, 1, bearer(other))
    # Each customer reads their own purchases only.
    assert get_json(f"{stack.storefront_url}/getAllUserBuys/{other}", bearer(userid))[0] == 403
    assert other_body["total_spent"] == Decimal("1.00")
    assert [p["userid"] for p in other_body["purchases"]] == [other]


def test_a_purchase_not_stored_is_reported_with_its_place_on_the_topic_and_the_consumers_lines(
    stack, userid, bearer
):
    """What the fault tests print when an accepted purchase is missing (tests/support/load.py)."""
    status, body, _ = call(
        "POST",
        f"{stack.storefront_url}/buy",
        {"username": "j", "userid": userid, "price": "3.00"},
        bearer(userid),
    )
    assert status == 201, body
    purchase_id = json.loads(body)["data"]["purchase_id"]
    wait_for_count(stack, userid, 1, bearer(userid))

    report = where_missing(stack, [purchase_id]).splitlines()
    assert report[0] == "1 accepted purchases are not stored; the first 1:"
    assert re.fullmatch(rf"  {purchase_id}: partition \d+ offset \d+", report[1])
    assert any(f"stored purchase {purchase_id}" in line for line in report[2:])
    absent = where_missing(stack, ["never-accepted"], timeout=1).splitlines()
    assert absent[1:] == ["  never-accepted: not on the topic"]


def test_spending_per_month_and_newest_first_after_buying(stack, userid, bearer):
    mine = bearer(userid)
    answers = []
    for price in ("29.99", "15.50", "42.00"):
        status, body, _ = call(
            "POST",
            f"{stack.storefront_url}/buy",
            {"username": "j", "userid": userid, "price": price},
            headers=mine,
        )
        assert status == 201, body
        answers.append(json.loads(body)["data"])
    wait_for_count(stack, userid, 3, mine)
    status, spending = get_json(f"{stack.storefront_url}/getSpending/{userid}", mine)
    assert status == 200
    months: dict[str, list] = {}
    for answer in answers:  # a purchase a moment before midnight UTC on a month's last day counts there
        months.setdefault(answer["timestamp"][:7], []).append(Decimal(str(answer["price"])))
    assert spending == {
        "userid": userid,
        "months": [{"month": m, "count": len(p), "total": sum(p)} for m, p in sorted(months.items())],
        "count": 3,
        "total_spent": Decimal("87.49"),
    }
    assert get_json(f"{stack.storefront_url}/getSpending/{userid}-other", mine)[0] == 403
    status, newest = get_json(f"{stack.storefront_url}/getAllUserBuys/{userid}?order=desc", mine)
    assert [p["purchase_id"] for p in newest["purchases"]] == [a["purchase_id"] for a in reversed(answers)]


def test_pages_through_the_storefront_point_back_at_the_storefront(stack, userid, bearer):
    mine = bearer(userid)
    for price in ("1.00", "2.00", "3.00"):
        body = {"username": "j", "userid": userid, "price": price}
        assert call("POST", f"{stack.storefront_url}/buy", body, headers=mine)[0] == 201
    wait_for_count(stack, userid, 3, mine)
    status, first = get_json(f"{stack.storefront_url}/getAllUserBuys/{userid}?limit=2", mine)
    assert status == 200 and len(first["purchases"]) == 2 and first["count"] == 3
    assert first["next"].startswith(f"{stack.storefront_url}/getAllUserBuys/{userid}?")
    status, second = get_json(first["next"], mine)
    assert [p["price"] for p in second["purchases"]] == [Decimal("3.00")]
    assert second["next"] is None
    assert get_json(f"{stack.storefront_url}/getAllUserBuys/{userid}?limit=5000", mine)[0] == 400


def test_user_ids_with_url_characters_read_back(stack, bearer):
    userid = f"jane.doe+{int(time.time() * 1000)}@example.com"
    body = {"username": "Jane", "userid": userid, "price": 3}
    assert call("POST", f"{stack.storefront_url}/buy", body, headers=bearer(userid))[0] == 201
    body = wait_for_count(stack, quote(userid, safe=""), 1, bearer(userid))
    assert body["userid"] == userid


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"username": "john"}, 400, "Missing required fields: ['userid', 'price']"),
        ({"username": "j", "userid": "u", "price": "abc"}, 400, "Price must be a valid number"),
        ({"username": "j", "userid": "u", "price": -5}, 400, "Price cannot be negative"),
        (None, 400, "Request body must be a JSON object"),
    ],
)
def test_errors_over_http(stack, bearer, body, status, error):
    raw = b"" if body is None else None
    got, content, headers = call("POST", f"{stack.storefront_url}/buy", body, raw=raw, headers=bearer("u"))
    assert got == status
    assert json.loads(content) == {"error": error}
    assert headers["Content-Type"] == "application/json"


def test_other_errors_over_http_are_json(stack, bearer):
    status, content, _ = call(
        "POST",
        f"{stack.storefront_url}/buy",
        raw=b"username=j",
        headers={"Content-Type": "application/x-www-form-urlencoded", **bearer("j")},
    )
    assert status == 415 and "error" in json.loads(content)
    status, content, _ = call("GET", f"{stack.storefront_url}/buy")
    assert status == 405 and json.loads(content) == {"error": "Method Not Allowed"}
    for base in (stack.storefront_url, stack.ledger_url):
        status, content, _ = call("GET", f"{base}/no/such/path")
        assert status == 404 and json.loads(content) == {"error": "Not found"}


def test_unknown_user_and_health(stack, bearer):
    assert get_json(f"{stack.storefront_url}/getAllUserBuys/nonexistent", bearer("nonexistent")) == (
        200,
        {"userid": "nonexistent", "purchases": [], "count": 0, "total_spent": 0, "next": None},
    )
    assert get_json(f"{stack.storefront_url}/health", {}) == (200, {"status": "healthy"})
    assert get_json(f"{stack.ledger_url}/health", {}) == (200, {"status": "healthy", "mongodb": "connected"})


def test_roles_serve_only_their_own_urls(stack):
    assert call("GET", f"{stack.storefront_url}/purchases/anyone")[0] == 404
    assert call("POST", f"{stack.ledger_url}/buy", {"username": "j", "userid": "u", "price": 1})[0] == 404
    assert call("GET", f"{stack.storefront_url}/metrics")[0] == 404  # metrics live on METRICS_PORT only


def test_every_process_serves_its_metrics(stack, userid, bearer):
    body = {"username": "j", "userid": userid, "price": 1}
    assert call("POST", f"{stack.storefront_url}/buy", body, headers=bearer(userid))[0] == 201
    wait_for_count(stack, userid, 1, bearer(userid))
    storefront = scrape(stack.ports.storefront_metrics)
    assert has(storefront, "purchases_published_total", outcome="acked")
    assert has(storefront, "purchase_publish_seconds_bucket")
    assert has(storefront, "ledger_request_seconds_bucket")
    assert has(storefront, "django_http_requests_total_by_method_total")
    ledger = scrape(stack.ports.ledger_metrics)
    assert has(ledger, "django_http_requests_latency_seconds_by_view_method_bucket")

    def consumer_counted():
        text = scrape(stack.ports.consumer_metrics)
        stored = has(text, "kafka_messages_processed_total", status="stored")
        return has(text, "kafka_consumer_lag") and stored and text

    consumer = wait_until(consumer_counted, 15, "consumer metrics")
    assert has(consumer, "kafka_consumer_batch_size_bucket")
    assert has(consumer, "kafka_message_processing_seconds_bucket")


def test_a_web_process_without_a_role_refuses_to_start(stack, tmp_path):
    env = stack.env()
    env.pop("SERVICE_ROLE", None)
    result = run_python("-m", "purchases_project.serve", env=env, timeout=30)
    assert result.returncode != 0
    assert "SERVICE_ROLE must be one of storefront, ledger" in result.stderr + result.stdout


def test_the_database_requires_the_credentials_the_services_use(stack):
    import pymongo

    anonymous = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{stack.ports.mongo}/?directConnection=true", serverSelectionTimeoutMS=2000
    )
    try:
        with pytest.raises(pymongo.errors.OperationFailure):
            anonymous[stack.database]["purchases"].find_one()
    finally:
        anonymous.close()
    assert "@" in stack.mongo_uri
    with stack.mongo() as client:
        assert client[stack.database]["purchases"].estimated_document_count() >= 0


def test_a_retry_with_the_same_idempotency_key_is_stored_once(stack, userid, bearer):
    body = {"username": "john", "userid": userid, "price": "19.99"}
    headers = {"Idempotency-Key": "checkout-7f3a", "Content-Type": "application/json", **bearer(userid)}
    first = call("POST", f"{stack.storefront_url}/buy", body, headers=headers)
    retry = call("POST", f"{stack.storefront_url}/buy", body, headers=headers)
    assert first[0] == retry[0] == 201
    purchase_id = json.loads(first[1])["data"]["purchase_id"]
    assert json.loads(retry[1])["data"]["purchase_id"] == purchase_id
    # A later purchase without a key shows the consumer got past both.
    assert (
        call("POST", f"{stack.storefront_url}/buy", {**body, "price": "1.00"}, headers=bearer(userid))[0]
        == 201
    )
    listed = wait_for_count(stack, userid, 2, bearer(userid))
    assert [p["purchase_id"] for p in listed["purchases"]].count(purchase_id) == 1
    assert listed["total_spent"] == Decimal("20.99")
