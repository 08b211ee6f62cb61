"""The purchase event's wire format (pure logic; the rules it applies: test_rules.py)."""

import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from purchases_project import jsonutil
from purchases_project.events import PurchaseEvent, format_timestamp, idempotent_purchase_id, parse_timestamp
from purchases_project.rules import InvalidPurchase, parse_price


@given(st.decimals(min_value=0, max_value=1_000_000_000, places=2, allow_nan=False))
def test_any_price_in_cents_round_trips_through_the_event(price):
    event = PurchaseEvent.new(username="a", userid="b", price=parse_price(price))
    decoded = PurchaseEvent.from_message(event.as_message())
    assert decoded.price == price
    assert decoded == event


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
        (
            b'{"schema_version": 1, "purchase_id": "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10",'
            b' "username": "a", "userid": "b", "price": "1", "timestamp": "0001-01-01T00:00:00+14:00"}',
            "ISO 8601",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
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
