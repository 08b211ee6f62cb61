"""The purchase event's wire format (pure logic; the rules it applies: test_rules.py)."""

import hmac
import json
import os
import uuid
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from purchases_project import jsonutil
from purchases_project.events import PurchaseEvent, format_timestamp, idempotent_purchase_id, parse_timestamp
from purchases_project.rules import InvalidPurchase, parse_price
from tests.support.processes import run_python


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


SECRET = "s" * 32


@given(st.from_regex(r"\A[A-Za-z0-9._@:+~-]{1,200}\Z"), st.from_regex(r"\A[ -~]{1,255}\Z"))
def test_an_idempotent_id_is_an_hmac_of_the_pair_under_the_secret(userid, key):
    # Written from the decision record, not from the code: HMAC-SHA256 of the compact JSON of
    # [userid, key], its first 128 bits as a UUID of version 8 with the RFC 9562 variant.
    mac = hmac.new(SECRET.encode(), json.dumps([userid, key], separators=(",", ":")).encode(), "sha256")
    expected = int.from_bytes(mac.digest()[:16], "big")
    expected = expected & ~(0xF << 76) | (0x8 << 76)  # version 8
    expected = expected & ~(0x3 << 62) | (0x2 << 62)  # variant 10
    derived = uuid.UUID(idempotent_purchase_id(userid, key, secret=SECRET))
    assert derived == uuid.UUID(int=expected)
    assert derived.version == 8 and derived.variant == uuid.RFC_4122


def test_idempotent_ids_cannot_be_computed_without_the_secret():
    mine = idempotent_purchase_id("user123", "k-1", secret=SECRET)
    assert idempotent_purchase_id("user123", "k-1", secret="t" * 32) != mine
    # The derivation it replaced: a name-based UUID under a namespace anyone could read.
    published = uuid.UUID("9a4f4bb6-6f7e-4c55-9d3e-2b7f4f0b7a11")
    assert mine != str(uuid.uuid5(published, json.dumps(["user123", "k-1"])))


@pytest.mark.parametrize("secret", ["", "x" * 31])
def test_no_id_is_derived_without_a_secret_of_32_characters(settings, secret):
    settings.IDEMPOTENCY_SECRET = secret
    with pytest.raises(ImproperlyConfigured, match="IDEMPOTENCY_SECRET"):
        idempotent_purchase_id("u1", "k")
    with pytest.raises(ImproperlyConfigured, match="IDEMPOTENCY_SECRET"):
        PurchaseEvent.new(username="a", userid="u1", price=Decimal(1), idempotency_key="k")
    PurchaseEvent.new(username="a", userid="u1", price=Decimal(1))  # no key, no secret needed


def test_the_settings_secret_is_the_default(settings):
    settings.IDEMPOTENCY_SECRET = SECRET
    assert idempotent_purchase_id("u1", "k") == idempotent_purchase_id("u1", "k", secret=SECRET)
    event = PurchaseEvent.new(username="a", userid="u1", price=Decimal(1), idempotency_key="k")
    assert event.purchase_id == idempotent_purchase_id("u1", "k", secret=SECRET)


@pytest.mark.parametrize("secret", [None, "too-short"])
def test_a_storefront_without_an_idempotency_secret_refuses_to_start(secret):
    env = {k: v for k, v in os.environ.items() if k != "IDEMPOTENCY_SECRET"}
    env.update(
        SERVICE_ROLE="storefront",
        DJANGO_SECRET_KEY="x",
        DJANGO_SETTINGS_MODULE="purchases_project.settings",
        AUTH_ISSUER="https://id.example.com",
        AUTH_JWKS_URL="https://id.example.com/jwks.json",
        **({"IDEMPOTENCY_SECRET": secret} if secret else {}),
    )
    result = run_python("-m", "purchases_project.serve", env=env)
    assert result.returncode != 0
    assert "cannot start: IDEMPOTENCY_SECRET must be set, at least 32 characters" in result.stderr
    assert "Listening at" not in result.stderr + result.stdout


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
