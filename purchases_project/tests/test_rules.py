"""The purchase rules: the values they accept, their messages, and their JSON Schema agreeing
with them (pure logic)."""

import json
import re
from decimal import Decimal

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from purchases_project import jsonutil
from purchases_project.rules import (
    CENTS,
    MAX_PRICE,
    PRICE_SCHEMA,
    USERID_SCHEMA,
    USERNAME_SCHEMA,
    InvalidPurchase,
    missing_fields,
    parse_price,
    parse_userid,
    parse_username,
)


def schema_admits(schema: dict, value) -> bool:
    # jsonschema_rs is what schema-driven fuzzing validates with (ECMA-262 patterns).
    return jsonschema_rs.validator_for(schema).is_valid(value)


def accepts(rule, value) -> bool:
    try:
        rule(value)
    except ValueError:  # InvalidPurchase is one
        return False
    return True


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
        ("2999e-2", "29.99"),
        ("0.5e1", "5.00"),
        ("1e9", "1000000000.00"),
        ("-0.00e5", "0.00"),
        (Decimal("0E+99999"), "0.00"),
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
        "٢٩.٩٩",  # Arabic-Indic digits
        "\uff12\uff19.\uff19\uff19",  # full-width digits
        "\u200329.99",  # an em space
        "29.99\u00a0",
        "1,5",
        "--1",
        "1e",
    ],
)
def test_price_that_is_not_a_number_is_refused(value):
    with pytest.raises(InvalidPurchase, match=r"^Price must be a valid number$"):
        parse_price(value)


def test_negative_price_is_refused():
    with pytest.raises(InvalidPurchase, match=r"^Price cannot be negative$"):
        parse_price("-0.01")


@pytest.mark.parametrize(
    "value", ["29.999", Decimal("29.999999999999999"), "1e-5", "1e-99999999999999999999", "0.0001e1"]
)
def test_price_with_more_than_two_places_is_refused(value):
    with pytest.raises(InvalidPurchase, match="decimal places"):
        parse_price(value)


@pytest.mark.parametrize("value", ["1000000000.01", "1e10", "1e999999", "1e99999999999999999999", "11e8"])
def test_price_above_a_billion_is_refused(value):
    with pytest.raises(InvalidPurchase, match="above"):
        parse_price(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        ("a" * 201, "at most 200"),
        ("a/b", "only letters"),
        ("a b", "only letters"),
        ({"$ne": None}, "must be a string"),
        (12, "must be a string"),
        (".", "not only dots"),
        ("..", "not only dots"),
        ("a\x00", "only letters"),
        ("\ud800", "valid Unicode"),
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
    for invisible in ("a\u200bb", "\ufeffa", "a\u2028b", "a\x85"):
        with pytest.raises(InvalidPurchase, match="control characters"):
            parse_username(invisible)
    with pytest.raises(InvalidPurchase, match="valid Unicode"):
        parse_username("a\udc00")


def test_missing_fields_are_named_in_contract_order():
    assert missing_fields({"username": "x", "price": None}) == ["userid", "price"]
    assert missing_fields({}) == ["username", "userid", "price"]


# A number written in ASCII with any sign, places and a one-digit exponent (most are not prices).
number_texts = st.from_regex(r"\A[+-]?(?:[0-9]{0,12}\.?[0-9]{0,5})(?:[eE][+-]?[0-9])?\Z")


def _is_price(text: str) -> bool:
    """The rule in words: a number from 0 to MAX_PRICE with at most two places."""
    if not re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9])?", text):
        return False
    value = Decimal(text)
    return 0 <= value <= MAX_PRICE and value == value.quantize(CENTS)


@given(number_texts)
@example("1e2")
@example("29.990")
@example("0001000000000.000e-0")
@example("10000000000e-1")
@example(".5e9")
def test_price_strings_are_accepted_exactly_when_the_schema_admits_them(text):
    expected = _is_price(text)
    assert schema_admits(PRICE_SCHEMA, text) == expected
    assert accepts(parse_price, text) == expected


@given(st.decimals(min_value=-10, max_value=2_000_000_000, places=3, allow_nan=False))
def test_price_numbers_are_accepted_exactly_when_the_schema_admits_them(value):
    as_json = float(value) if value % 1 else int(value)  # what a JSON client sends
    assert accepts(parse_price, jsonutil.loads(json.dumps(as_json))) == schema_admits(PRICE_SCHEMA, as_json)


@given(st.text(max_size=210))
@example(".")
@example("..")
@example("a.")
@example("user@example.com")
@example("a\n")
def test_userids_are_accepted_exactly_when_the_schema_admits_them(text):
    assert accepts(parse_userid, text) == schema_admits(USERID_SCHEMA, text)


@given(st.text(max_size=210))
@example("\u200b")
@example("Zoë O'Brien 🎉")
@example("a\n")
def test_usernames_are_accepted_exactly_when_the_schema_admits_them(text):
    assert accepts(parse_username, text) == schema_admits(USERNAME_SCHEMA, text)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"username":"u","userid":"x","price":1e99999999999999999999}', "above"),
        (b'{"username":"u","userid":"x","price":1e-99999999999999999999}', "decimal places"),
        (b'{"username":"u","userid":"x","price":"1e-99999999999999999999"}', "decimal places"),
        (b'{"username":"u","userid":"x","price":0e99999999999999999999}', None),
    ],
)
def test_numbers_no_decimal_holds_get_a_clear_reason(body, message):
    data = jsonutil.loads(body)
    if message is None:
        assert parse_price(data["price"]) == 0
    else:
        with pytest.raises(InvalidPurchase, match=message):
            parse_price(data["price"])


def test_json_nested_too_deeply_is_a_value_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonutil.loads(b"[" * 100_000 + b"]" * 100_000)
    assert jsonutil.loads(b"[" * 100 + b"]" * 100)  # ordinary nesting still parses
