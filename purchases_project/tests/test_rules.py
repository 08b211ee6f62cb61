"""The purchase rules: the values they accept, their messages, and their JSON Schema agreeing
with them (pure logic)."""

import json
import re
import string
import time
import unicodedata
from decimal import Decimal

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from purchases_project import jsonutil
from purchases_project.rules import (
    CENTS,
    IDEMPOTENCY_KEY_SCHEMA,
    MAX_PRICE,
    PRICE_SCHEMA,
    USERID_SCHEMA,
    USERNAME_SCHEMA,
    InvalidPurchase,
    missing_fields,
    parse_idempotency_key,
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


# Any text, with the characters the rule allows (and dots) far more often than chance.
userids = st.text(st.one_of(st.sampled_from("aZ09-_.@:+~...."), st.characters()), max_size=210)


@given(userids)
@example(".")
@example("..")
@example("a.")
@example("user@example.com")
@example("a\n")
def test_userids_are_accepted_exactly_when_the_schema_admits_them(text):
    expected = _is_userid(text)
    assert schema_admits(USERID_SCHEMA, text) == expected
    assert accepts(parse_userid, text) == expected


def _is_userid(text: str) -> bool:
    """The rule in words: 1 to 200 of ASCII letters, digits and -_.@:+~, not dots alone."""
    allowed = set(string.ascii_letters + string.digits + "-_.@:+~")
    return 1 <= len(text) <= 200 and set(text) <= allowed and set(text) != {"."}


# Unicode's own word on what is not printable text: control, format and line-separator characters.
NOT_PRINTABLE = ("Cc", "Cf", "Zl", "Zp")


def _is_username(text: str) -> bool:
    """The rule in words, from unicodedata: 1 to 200 characters, none of them NOT_PRINTABLE."""
    return 1 <= len(text) <= 200 and not any(unicodedata.category(c) in NOT_PRINTABLE for c in text)


# Any text, with the characters the rule is about (in every plane) far more often than chance.
# (Not halves of UTF-16 pairs: no schema validator takes them; the rule's own test covers them.)
usernames = st.text(
    st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.characters(categories=NOT_PRINTABLE),
        st.characters(min_codepoint=0x10000, exclude_categories=["Cs"]),
    ),
    max_size=210,
)


@pytest.mark.parametrize(
    "character",
    ["\U000e0001", "\U000e0041", "\U0001d173", "\U000110bd", "\U00013430", "\U0001bca0", "\U000e007f"],
)
def test_username_refuses_format_characters_beyond_the_basic_plane(character):
    assert unicodedata.category(character) == "Cf"
    for text in (character, f"a{character}b"):
        assert not schema_admits(USERNAME_SCHEMA, text)
        with pytest.raises(InvalidPurchase, match="control characters"):
            parse_username(text)


def test_every_character_unicode_calls_control_format_or_line_separator_is_refused():
    refused = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in NOT_PRINTABLE]
    assert len(refused) > 200
    admitted_by_schema = [c for c in refused if schema_admits(USERNAME_SCHEMA, f"a{c}")]
    accepted = [c for c in refused if accepts(parse_username, f"a{c}")]
    assert admitted_by_schema == accepted == []


@given(usernames)
@example("\u200b")
@example("Zoë O'Brien 🎉")
@example("a\n")
@example("\U000e0001")
@example("𝄞 \U0001f389")
def test_usernames_are_accepted_exactly_when_the_schema_admits_them(text):
    expected = _is_username(text)
    assert accepts(parse_username, text) == expected
    assert schema_admits(USERNAME_SCHEMA, text) == expected


def _is_idempotency_key(text: str) -> bool:
    """1 to 255 printable ASCII characters (space to tilde)."""
    return 1 <= len(text) <= 255 and all(0x20 <= ord(c) <= 0x7E for c in text)


@given(
    st.text(
        st.one_of(st.characters(max_codepoint=0x7F), st.characters(exclude_categories=["Cs"])), max_size=260
    )
)
@example("k-1")
@example("x" * 255)
@example("x" * 256)
@example("caf\u00c3\u00a9")  # "café" in UTF-8, as a WSGI server hands the header over (Latin-1)
def test_idempotency_keys_are_accepted_exactly_when_the_schema_admits_them(text):
    expected = _is_idempotency_key(text)
    assert accepts(parse_idempotency_key, text) == expected
    assert schema_admits(IDEMPOTENCY_KEY_SCHEMA, text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "printable ASCII"),  # what a server makes of a value that is not ASCII
        ("k" * 256, "^Idempotency-Key must be at most 255 characters$"),
        ("\u00e9" * 256, "printable ASCII"),
        ("caf\u00c3\u00a9", "printable ASCII"),
        ("\u00e9", "printable ASCII"),
        ("a\tb", "printable ASCII"),
    ],
)
def test_an_unusable_idempotency_key_is_told_what_is_wrong_with_it(value, message):
    with pytest.raises(InvalidPurchase, match=message):
        parse_idempotency_key(value)
    assert parse_idempotency_key(None) is None
    assert parse_idempotency_key("order 42/retry-1") == "order 42/retry-1"


@pytest.mark.parametrize("padding", [0, 30, 59])
def test_price_strings_are_at_most_64_characters_whatever_they_hold(padding):
    text = " " * padding + "29.99" + " " * (64 - 5 - padding)
    assert len(text) == 64
    assert str(parse_price(text)) == "29.99" and schema_admits(PRICE_SCHEMA, text)
    for longer in (text + " ", "0" + text, " " * 65_400, "0" * 65_400 + "x", "9" * 65_400):
        assert not schema_admits(PRICE_SCHEMA, longer)
        with pytest.raises(
            InvalidPurchase, match=r"^Price written as a string must be at most 64 characters$"
        ):
            parse_price(longer)


def test_a_64_kib_price_is_refused_in_well_under_a_millisecond():
    # Before the bound, matching the price patterns against 64 KiB of spaces took ~55 ms of CPU.
    texts = [" " * 65_400, "0" * 65_400 + "x", "9" * 65_400]
    start = time.process_time()
    for _ in range(10):
        for text in texts:
            assert not accepts(parse_price, text)
    per_refusal_ms = (time.process_time() - start) / 30 * 1000
    assert per_refusal_ms < 1.0, f"{per_refusal_ms:.2f} ms of CPU per refusal"


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


def test_numbers_no_decimal_holds_are_found_anywhere_in_a_body():
    for body in (
        b'{"username":"a","userid":"u","price":1,"extra":1e99999999999999999999}',
        b'{"a":[{"b":[1,-1e-99999999999999999999]}]}',
        b"[" * 900 + b"1e99999999999999999999" + b"]" * 900,
    ):
        assert jsonutil.holds_unrepresentable(jsonutil.loads(body))
    for body in (b'{"username":"a","userid":"u","price":1,"extra":1e999}', b'{"a":0e99999999999999999999}'):
        assert not jsonutil.holds_unrepresentable(jsonutil.loads(body))


def test_json_nested_too_deeply_is_a_value_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonutil.loads(b"[" * 100_000 + b"]" * 100_000)
    assert jsonutil.loads(b"[" * 100 + b"]" * 100)  # ordinary nesting still parses
