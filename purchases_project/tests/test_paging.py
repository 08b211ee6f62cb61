"""The read endpoints' parameters: what they accept agrees with what their schema admits."""

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from purchases_project.paging import (
    CURSOR_PATTERN,
    LIMIT_PATTERN,
    MONTH_PATTERN,
    Cursor,
    PageParams,
    SpendingParams,
    cursor_decode,
    cursor_encode,
    parse_moment,
    read_params_validate,
)
from purchases_project.tests.test_rules import accepts

DATE_TIME = jsonschema_rs.Draft202012Validator(
    {"type": "string", "format": "date-time"}, validate_formats=True
)


def _two(low: int, high: int):
    return st.integers(low, high).map(lambda n: f"{n:02d}")


# Date-times near and past every edge RFC 3339 draws: days, hours, leap seconds, offsets.
moments = st.builds(
    "{}-{}-{}{}{}:{}:{}{}{}".format,
    st.sampled_from(["0000", "0001", "1900", "2000", "2026", "2100", "9999"])
    | st.integers(0, 9999).map("{:04d}".format),
    _two(0, 13),
    _two(0, 32),
    st.sampled_from(["T", "t", " "]),
    _two(0, 24),
    _two(0, 60),
    _two(0, 61),
    st.sampled_from(["", ".1", ".123456", ".1234567", "."]),
    st.sampled_from(["Z", "z", "", "+00:00", "-14:00", "+14:00", "+23:59", "+24:00", "-00:60", "+0000"]),
)


@given(moments)
@example("2026-06-30T23:59:60Z")
@example("2026-06-30T12:00:60Z")
@example("2026-07-01T01:59:60+02:00")
@example("0000-02-29T00:00:00Z")
@example("2026-01-15T10:30:00")
def test_since_and_until_are_accepted_exactly_when_the_schema_admits_them(text):
    assert accepts(parse_moment, text) == DATE_TIME.is_valid(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-15T11:30:00.123456+01:00", "2026-01-15T10:30:00.123456Z"),
        ("2026-01-15t10:30:00z", "2026-01-15T10:30:00.000000Z"),
        ("2026-01-15T10:30:00.1234561Z", "2026-01-15T10:30:00.123457Z"),  # rounds up
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00.000000Z"),
        ("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00.000000Z"),  # clamped
        ("0000-06-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_moments_become_the_stored_utc_text_clamped_to_years_1_to_9999(text, expected):
    assert parse_moment(text) == expected


@given(
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z"),
    st.uuids(),
    st.sampled_from(["asc", "desc"]),
)
def test_cursors_round_trip_with_their_order_and_match_their_pattern(timestamp, purchase_id, order):
    cursor = cursor_encode(timestamp, str(purchase_id), order)
    assert jsonschema_rs.validator_for({"type": "string", "pattern": CURSOR_PATTERN}).is_valid(cursor)
    assert cursor_decode(cursor) == Cursor(timestamp, str(purchase_id), order)


def test_ascending_cursors_keep_the_shape_they_had_before_there_was_an_order():
    purchase_id = "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10"
    assert cursor_encode("2026-01-15T10:30:00.123456Z", purchase_id) == f"20260115103000123456_{purchase_id}"
    assert cursor_encode("2026-01-15T10:30:00.123456Z", purchase_id, "desc").endswith(f"{purchase_id}_desc")


@pytest.mark.parametrize(
    ("query", "order"),
    [
        ({}, "asc"),
        ({"order": "desc"}, "desc"),
        # A cursor keeps the order it was issued for, whatever `order` says.
        (
            {
                "order": "asc",
                "cursor": cursor_encode(
                    "2026-01-15T10:30:00.123456Z", "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10", "desc"
                ),
            },
            "desc",
        ),
        (
            {
                "order": "desc",
                "cursor": cursor_encode(
                    "2026-01-15T10:30:00.123456Z", "6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10"
                ),
            },
            "asc",
        ),
    ],
)
def test_the_order_read_is_the_cursors_when_there_is_one(query, order):
    assert read_params_validate(userid="u", query_params=query)["order"] == order


@given(st.text(max_size=6))
@example("asc")
@example("desc")
@example("")
@example("ASC")
@example("desc ")
def test_orders_are_accepted_exactly_when_the_schema_admits_them(text):
    assert PageParams(data={"order": text}).is_valid() == (text in ("asc", "desc"))


@given(st.from_regex(r"\A[0-9]{4}-[0-9]{2}\Z") | st.text(alphabet="0123456789-", max_size=9))
@example("2026-11")
@example("2026-00")
@example("2026-13")
@example("0000-01")
@example("2026-1")
@example("2026-11\n")
@example("")
def test_months_are_accepted_exactly_when_the_schema_admits_them(text):
    admitted = jsonschema_rs.validator_for({"type": "string", "pattern": MONTH_PATTERN}).is_valid(text)
    for name in ("since", "until"):
        params = SpendingParams(data={name: text})
        assert params.is_valid() == admitted, params.errors
        if admitted:
            assert params.validated_data[name] == text


@given(st.text(max_size=80))
@example("20260115103000123456_6f1c0c52-1d7d-4a8e-9d36-0d8c2b7c7a10")
@example("20260115103000123456_6F1C0C52-1D7D-4A8E-9D36-0D8C2B7C7A10")
def test_cursors_are_accepted_exactly_when_the_schema_admits_them(text):
    params = PageParams(data={"cursor": text})
    assert params.is_valid() == jsonschema_rs.validator_for(
        {"type": "string", "pattern": CURSOR_PATTERN}
    ).is_valid(text)


@given(st.text(alphabet="0123456789.+-e x", max_size=8))
@example("5.0")
@example("0001000")
@example("1" * 5000)
def test_limits_are_accepted_exactly_when_the_schema_admits_them(text):
    as_integer = jsonschema_rs.validator_for({"type": "string", "pattern": LIMIT_PATTERN}).is_valid(text)
    in_range = as_integer and 1 <= float(text) <= 1000
    assert PageParams(data={"limit": text}).is_valid() == in_range


@pytest.mark.parametrize("text", ["5.0", "5.", "5.00", "1e1", "+5", " 5", "5 ", "0x5", "\u0665"])
def test_a_limit_that_is_not_plain_digits_is_refused(text):
    params = PageParams(data={"limit": text})
    assert not params.is_valid()
    assert "whole number" in str(params.errors["limit"][0])


def test_a_limit_of_plain_digits_is_a_page_size():
    for text, size in (("5", 5), ("0005", 5), ("1000", 1000)):
        params = PageParams(data={"limit": text})
        assert params.is_valid() and params.validated_data["limit"] == size
