"""POST /buy, in process, against the real broker of the shared stack."""

import json
import uuid

import pytest

from devstack.stack import free_port
from storefront import producer
from tests.support.kafka import find_event

pytestmark = pytest.mark.urls("storefront.urls")


@pytest.fixture
def buy(client, bearer):
    """POST /buy as the customer the body names (or `as_user`), with a token of the test issuer."""

    def post(body, as_user: str | None = None, **headers):
        userid = body.get("userid") if isinstance(body, dict) else None
        headers = {**bearer(as_user or (userid if isinstance(userid, str) else "u")), **headers}
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        # CONTENT_TYPE explicitly: the test client drops it for an empty body, curl does not.
        return client.post(
            "/buy",
            data=data,
            content_type="application/json",
            headers=headers,
            CONTENT_TYPE="application/json",
        )

    return post


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json", "Request body must be a JSON object"),
        ("[1, 2]", "Request body must be a JSON object"),
        ("", "Request body must be a JSON object"),
        ({"username": "john"}, "Missing required fields: ['userid', 'price']"),
        ({"username": None, "userid": "u", "price": 1}, "Missing required fields: ['username']"),
        ({"username": "j", "userid": "u", "price": "abc"}, "Price must be a valid number"),
        ({"username": "j", "userid": "u", "price": True}, "Price must be a valid number"),
        ({"username": "j", "userid": "u", "price": [1]}, "Price must be a valid number"),
        ('{"username": "j", "userid": "u", "price": NaN}', "Request body must be a JSON object"),
        ({"username": "j", "userid": "u", "price": -1}, "Price cannot be negative"),
        ({"username": "j", "userid": {"$ne": None}, "price": 1}, "userid must be a string"),
        ({"username": "", "userid": "u", "price": 1}, "username must not be empty"),
        (
            {"username": "j", "userid": "a/b", "price": 1},
            "userid may contain only letters, digits and -_.@:+~, and not only dots",
        ),
        (
            {"username": "j", "userid": "..", "price": 1},
            "userid may contain only letters, digits and -_.@:+~, and not only dots",
        ),
        (
            {"username": "j", "userid": "u", "price": "\u0662\u0669.\u0669\u0669"},
            "Price must be a valid number",
        ),
        (
            '{"username": "j", "userid": "u", "price": 1e99999999999999999999}',
            "Price cannot be above 1000000000",
        ),
        ("[" * 1000 + "]" * 1000, "Request body must be a JSON object"),
    ],
)
def test_buy_rejects_invalid_purchases_with_the_contract_texts(buy, body, error):
    response = buy(body)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_buy_rejects_price_with_three_decimals_even_when_it_looks_like_a_float(buy):
    response = buy('{"username": "j", "userid": "u", "price": 29.999999999999999}')
    assert response.status_code == 400
    assert "decimal places" in response.json()["error"]


def test_buy_rejects_price_above_a_billion(buy):
    response = buy({"username": "j", "userid": "u", "price": "1000000000.01"})
    assert response.status_code == 400
    assert "1000000000" in response.json()["error"]


def test_buy_answers_415_for_form_data(client, bearer):
    response = client.post("/buy", data={"username": "j"}, headers=bearer("j"))
    assert response.status_code == 415
    assert "error" in response.json()


def test_buy_answers_413_for_a_body_over_64_kib(buy):
    response = buy({"username": "j" * 70000, "userid": "u", "price": 1})
    assert response.status_code == 413
    assert "error" in response.json()


def test_buy_answers_405_with_json_for_get(client):
    response = client.get("/buy")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}
    assert "POST" in response["Allow"]


def test_unknown_path_is_json_404(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_buy_rejects_an_overlong_idempotency_key(buy):
    response = buy({"username": "j", "userid": "u", "price": 1}, **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert response.json() == {"error": "Idempotency-Key must be at most 255 characters"}


@pytest.mark.parametrize("key", ["caf\u00c3\u00a9", "\u00e9", "\u00c3\u00a9" * 200, ""])
def test_buy_tells_a_non_ascii_idempotency_key_what_is_wrong_with_it(buy, key):
    # A WSGI server hands header bytes over as Latin-1: "é" sent in UTF-8 is "\u00c3\u00a9".
    response = buy({"username": "j", "userid": "u", "price": 1}, **{"Idempotency-Key": key})
    assert response.status_code == 400
    message = response.json()["error"]
    assert "printable ASCII" in message and "255" not in message


def test_buy_refuses_a_number_no_decimal_holds_in_an_ignored_field_as_in_the_price(buy, userid):
    huge = "1e99999999999999999999"
    extra = buy(f'{{"username":"a","userid":"{userid}","price":1,"extra": {huge}}}')
    assert extra.status_code == 400
    assert extra.json() == {"error": "Request body holds a number too large or too small to represent"}
    nested = buy(f'{{"username":"a","userid":"{userid}","price":1,"x":[{{"y":-{huge[:-1]}7}}]}}')
    assert nested.status_code == 400
    as_price = buy(f'{{"username":"a","userid":"{userid}","price":{huge}}}')
    assert as_price.status_code == 400
    assert as_price.json() == {"error": "Price cannot be above 1000000000"}
    # A bad body is a 400 whoever sends it: before ownership's 403.
    other = buy(f'{{"username":"a","userid":"{userid}","price":1,"extra": {huge}}}', as_user="someone-else")
    assert other.status_code == 400


def test_a_recorded_purchase_is_never_cached_and_varies_by_token_and_session(buy, live_settings, userid):
    from ledger.tests.test_purchases_api import private

    response = buy({"username": "j", "userid": userid, "price": 1})
    assert response.status_code == 201
    assert private(response), dict(response.headers)


def test_buy_publishes_one_acknowledged_event_keyed_by_userid(buy, live_settings, userid):
    response = buy({"username": "john", "userid": userid, "price": "1e2"}, **{"X-Request-ID": "req-abc-123"})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "success"
    assert body["message"] == "Purchase recorded"
    data = body["data"]
    assert set(data) == {"purchase_id", "username", "userid", "price", "timestamp"}
    assert data["username"] == "john" and data["userid"] == userid
    assert b'"price":100.00' in response.content  # a JSON number with its two places
    assert data["timestamp"].endswith("Z") and len(data["timestamp"]) == 27
    uuid.UUID(data["purchase_id"])
    assert response["X-Request-ID"] == "req-abc-123"

    bootstrap, topic = live_settings.KAFKA_BOOTSTRAP_SERVERS, live_settings.KAFKA_TOPIC
    message = find_event(bootstrap, topic, data["purchase_id"])
    assert message.key() == userid.encode()
    assert json.loads(message.value()) == {
        "schema_version": 1,
        "purchase_id": data["purchase_id"],
        "username": "john",
        "userid": userid,
        "price": "100.00",
        "timestamp": data["timestamp"],
    }
    assert ("x-request-id", b"req-abc-123") in message.headers()


def test_buy_with_an_idempotency_key_repeats_its_purchase_id(buy, live_settings, userid):
    body = {"username": "john", "userid": userid, "price": 5}
    first = buy(body, **{"Idempotency-Key": "order-1"})
    again = buy(body, **{"Idempotency-Key": "order-1"})
    other = buy(body, **{"Idempotency-Key": "order-2"})
    assert first.status_code == again.status_code == other.status_code == 201
    assert first.json()["data"]["purchase_id"] == again.json()["data"]["purchase_id"]
    assert first.json()["data"]["purchase_id"] != other.json()["data"]["purchase_id"]


def test_buy_answers_503_within_two_seconds_when_the_broker_is_unreachable(buy, settings):
    import time

    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"  # nothing listens there
    # Well inside the 2 s bound, so a busy machine's scheduling delays cannot fail it.
    settings.KAFKA_PUBLISH_TIMEOUT_S = 0.5
    producer.close_producer()
    try:
        started = time.monotonic()
        response = buy({"username": "j", "userid": "u", "price": 1})
        elapsed = time.monotonic() - started
    finally:
        producer.close_producer()
    assert response.status_code == 503
    assert "broker" in response.json()["error"]
    assert elapsed < 2.0


def test_buy_without_a_token_is_401_with_a_bearer_challenge(client):
    response = client.post("/buy", data="{}", content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="purchases"'
    assert response.json() == {"error": "A bearer token is required"}


def test_buy_for_another_customer_is_403_but_a_bad_body_is_400_first(buy, userid):
    other = buy({"username": "j", "userid": userid, "price": 1}, as_user="someone-else")
    assert other.status_code == 403
    assert "error" in other.json()
    bad = buy({"username": "j", "userid": userid, "price": "abc"}, as_user="someone-else")
    assert bad.status_code == 400
    assert bad.json() == {"error": "Price must be a valid number"}


def test_an_idempotency_key_is_scoped_to_the_customer(buy, live_settings, userid):
    mine = buy({"username": "j", "userid": userid, "price": 1}, **{"Idempotency-Key": "k-1"})
    theirs = buy({"username": "x", "userid": f"{userid}-b", "price": 9}, **{"Idempotency-Key": "k-1"})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["data"]["purchase_id"] != theirs.json()["data"]["purchase_id"]
