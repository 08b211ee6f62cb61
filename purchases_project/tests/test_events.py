"""The purchase rules and the event's wire format (pure logic)."""

import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from purchases_project import jsonutil
from purchases_project.events import (
    InvalidPurchase,
    PurchaseEvent,
    format_timestamp,
    idempotent_purchase_id,
    missing_fields,
    parse_price,
    parse_timestamp,
    parse_userid,
    parse_username,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("29.99"), "29.99"),
        ("29.99", "29.99"),
        ("1e2", "100.00"),
        (Decimal("29.990"), "29.99"),
        (0, "0.00"),
        ("-0", "0.00"),
        (1000000000, "1000000000.00"),
        (" 42 ", "42.00"),
    ],
)
def test_price_is_exact_with_two_places(value, expected):
    assert str(parse_price(value)) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        [],
        {},
        {"$ne": None},
        "abc",
        "",
        "NaN",
        "Infinity",
        "1_000",
        "0x10",
        Decimal("NaN"),
        Decimal("Infinity"),
        29.99,
    ],
)
def test_price_that_is_not_a_number_is_refused(value):
    with pytest.raises(InvalidPurchase, match=r"^Price must be a valid number$"):
        parse_price(value)


def test_negative_price_is_refused():
    with pytest.raises(InvalidPurchase, match=r"^Price cannot be negative$"):
        parse_price("-0.01")


@pytest.mark.parametrize("value", ["29.999", Decimal("29.999999999999999"), "1e-5"])
def test_price_with_more_than_two_places_is_refused(value):
    with pytest.raises(InvalidPurchase, match="decimal places"):
        parse_price(value)


@pytest.mark.parametrize("value", ["1000000000.01", "1e10", "1e999999"])
def test_price_above_a_billion_is_refused(value):
    with pytest.raises(InvalidPurchase, match="above"):
        parse_price(value)


@given(st.decimals(min_value=0, max_value=1_000_000_000, places=2, allow_nan=False))
def test_any_price_in_cents_round_trips_through_the_event(price):
    event = PurchaseEvent.new(username="a", userid="b", price=parse_price(price))
    decoded = PurchaseEvent.from_message(event.as_message())
    assert decoded.price == price
    assert decoded == event


@given(st.text(alphabet="abcXYZ019-_.@:+~", min_size=1, max_size=200))
def test_userids_of_allowed_characters_are_accepted(userid):
    assert parse_userid(userid) == userid


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        ("a" * 201, "at most 200"),
        ("a/b", "only letters"),
        ("a b", "only letters"),
        ({"$ne": None}, "must be a string"),
        (12, "must be a string"),
    ],
)
def test_bad_userid_is_refused(value, message):
    with pytest.raises(InvalidPurchase, match=message):
        parse_userid(value)


def test_username_may_hold_printable_text_but_no_control_characters():
    assert parse_username("Zoë O'Brien 🎉") == "Zoë O'Brien 🎉"
    with pytest.raises(InvalidPurchase, match="control characters"):
        parse_username("bad\nname")
    with pytest.raises(InvalidPurchase, match="must be a string"):
        parse_username(["x"])


def test_missing_fields_are_named_in_contract_order():
    assert missing_fields({"username": "x", "price": None}) == ["userid", "price"]
    assert missing_fields({}) == ["username", "userid", "price"]


def test_timestamp_is_utc_with_microseconds_and_z():
    moment = parse_timestamp("2026-01-15T11:30:00.123456+01:00")
    assert format_timestamp(moment) == "2026-01-15T10:30:00.123456Z"
    assert format_timestamp(parse_timestamp("2026-01-15")) == "2026-01-15T00:00:00.000000Z"


def test_idempotent_ids_are_stable_and_unambiguous():
    assert idempotent_purchase_id("u1", "k") == idempotent_purchase_id("u1", "k")
    assert idempotent_purchase_id("ab", "c") != idempotent_purchase_id("a", "bc")
    assert idempotent_purchase_id("u1", "k") != idempotent_purchase_id("u2", "k")
    uuid.UUID(idempotent_purchase_id("u1", "k"))


def test_event_on_the_wire_matches_the_contract():
    event = PurchaseEvent.new(username="john", userid="user123", price=Decimal("29.99"))
    wire = json.loads(event.as_message())
    assert wire == {
        "schema_version": 1,
        "purchase_id": event.purchase_id,
        "username": "john",
        "userid": "user123",
        "price": "29.99",
        "timestamp": event.timestamp,
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (None, "empty message"),
        (b'{"schema_version": 2}', "schema_version"),
        (b'{"schema_version": 1, "username": "a", "userid": "b", "price": "1"}', "Missing"),
        (
            b'{"schema_version": 1, "purchase_id": "x", "username": "a", "userid": "b",'
            b' "price": "1", "timestamp": "2026-01-01T00:00:00Z"}',
            "UUID",
        ),
        (
            b'{"schema_version": 1, "purchase_id": "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10",'
            b' "username": "a", "userid": "b", "price": 1.5, "timestamp": "2026-01-01T00:00:00Z"}',
            "decimal string",
        ),
        (
            b'{"schema_version": 1, "purchase_id": "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10",'
            b' "username": "a", "userid": "b", "price": "-1", "timestamp": "2026-01-01T00:00:00Z"}',
            "negative",
        ),
        (
            b'{"schema_version": 1, "purchase_id": "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10",'
            b' "username": "a", "userid": "b", "price": "1", "timestamp": "yesterday"}',
            "ISO 8601",
        ),
    ],
)
def test_invalid_events_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidPurchase, match=reason):
        PurchaseEvent.from_message(raw)


def test_json_writes_decimals_exactly_and_reads_them_back():
    big = Decimal("123456789012345678.91")
    assert jsonutil.dumps({"total": big, "zero": Decimal(0)}) == b'{"total":123456789012345678.91,"zero":0}'
    assert jsonutil.loads(b'{"p": 29.999999999999999}')["p"] == Decimal("29.999999999999999")
    with pytest.raises(ValueError):
        jsonutil.loads(b'{"p": NaN}')
