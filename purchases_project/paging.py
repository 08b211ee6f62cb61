"""The read endpoints' parameters, defined once for both services.

`PageParams` validates `limit`, `cursor`, `since`, `until` and `order` (a bad
one is a 400) and, through drf-spectacular, documents them: the storefront
checks them before it asks the ledger, and the ledger checks them again.
`SpendingParams` does the same for the spending endpoints' `since`/`until` months.

Cursors are `<timestamp digits>_<purchase_id>` of the last purchase on a page,
with `_desc` after it on a newest-first page: opaque to clients, but of a shape
the schema states exactly, so every string of that shape is a cursor (one past
the end gives an empty page). A cursor keeps the order it was issued for: with
a cursor, `order` is ignored, so every cursor the schema admits is answered.
`since`/`until` are RFC 3339 date-times (ISO 8601's internet profile), as the
schema's `date-time` format says; a moment outside the years 1 to 9999 in UTC
is clamped to that range, since no purchase lies beyond it.
"""

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from purchases_project.events import format_timestamp
from purchases_project.rules import InvalidPurchase, parse_userid

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CURSOR_PATTERN = rf"^[0-9]{{20}}_{_UUID}(?:_desc)?$"
ORDERS = ("asc", "desc")
MONTH_PATTERN = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$"
LIMIT_PATTERN = r"^[0-9]+$"
_CURSOR = re.compile(CURSOR_PATTERN)
_LIMIT = re.compile(LIMIT_PATTERN)
_MONTH = re.compile(MONTH_PATTERN)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)
_GREGORIAN_CYCLE_DAYS = 146097  # 400 years: the calendar repeats


class InvalidCursor(ValueError):
    pass


class Cursor(NamedTuple):
    """Where the next page starts: after this purchase, in this order."""

    timestamp: str
    purchase_id: str
    order: str = "asc"


def cursor_encode(timestamp: str, purchase_id: str, order: str = "asc") -> str:
    digits = "".join(c for c in timestamp if c.isdigit())
    return f"{digits}_{purchase_id}" + ("_desc" if order == "desc" else "")


def cursor_decode(cursor: str) -> Cursor:
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise InvalidCursor("cursor is not one this service issued")
    d, purchase_id, *desc = cursor.split("_")
    timestamp = f"{d[:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}.{d[14:]}Z"
    return Cursor(timestamp, purchase_id, "desc" if desc else "asc")


def parse_moment(text: str) -> str:
    """An RFC 3339 date-time as the fixed-width UTC text purchases are stored with.

    Leap seconds, year 0000 and offsets up to ±23:59 are valid RFC 3339; moments
    beyond the years 1 to 9999 in UTC are clamped. Fractions beyond microseconds
    round up (purchase times are whole microseconds, so bounds keep their meaning).
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-15T10:30:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, sign, offset_hours, offset_minutes = match.groups()[6:]
    leap_cycle_year = year if year > 0 else 2000  # year 0 is a leap year, as 2000 is
    if not (
        1 <= month <= 12
        and 1 <= day <= calendar.monthrange(leap_cycle_year, month)[1]
        and hour <= 23
        and minute <= 59
        and second <= 60
        and int(offset_hours or 0) <= 23
        and int(offset_minutes or 0) <= 59
    ):
        raise ValueError("is not a valid date and time")
    offset = timedelta(hours=int(offset_hours or 0), minutes=int(offset_minutes or 0))
    if sign == "-":
        offset = -offset
    if second == 60 and (timedelta(hours=hour, minutes=minute) - offset) % timedelta(days=1) != timedelta(
        hours=23, minutes=59
    ):
        raise ValueError("has a leap second other than at 23:59:60 UTC")
    micros = int((fraction or "").ljust(6, "0")[:6]) + (1 if (fraction or "")[6:].strip("0") else 0)
    # Counted from 0001-01-01 in UTC; year 0 is counted from 400 years later, one cycle back.
    shift = 1 if year == 0 else 0
    days = datetime(year + 400 * shift, month, day).toordinal() - 1 - shift * _GREGORIAN_CYCLE_DAYS
    elapsed = timedelta(days=days, hours=hour, minutes=minute, seconds=second, microseconds=micros) - offset
    if elapsed < timedelta(0):
        return format_timestamp(_EARLIEST)
    if elapsed > _LATEST - _EARLIEST:
        return format_timestamp(_LATEST)
    return format_timestamp(_EARLIEST + elapsed)


class _Param(serializers.Field):
    """A query parameter as sent: `until=` is an empty value (invalid), not an absent one."""

    def get_value(self, dictionary):
        return dictionary.get(self.field_name, empty)


@extend_schema_field({"type": "string", "format": "date-time"})
class MomentField(_Param):
    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return parse_moment(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    default_error_messages = {"invalid": "must be an RFC 3339 date-time"}


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE})
class LimitField(_Param):
    """Digits only: `5.0`, ` 5` and `+5` are not page sizes."""

    default_error_messages = {"invalid": f"must be a whole number from 1 to {MAX_PAGE_SIZE}"}

    def to_internal_value(self, data) -> int:
        if not isinstance(data, str) or not _LIMIT.fullmatch(data):
            self.fail("invalid")
        digits = data.lstrip("0")
        if not digits or len(digits) > len(str(MAX_PAGE_SIZE)) or int(digits) > MAX_PAGE_SIZE:
            self.fail("invalid")
        return int(digits)


@extend_schema_field({"type": "string", "pattern": CURSOR_PATTERN})
class CursorField(_Param):
    default_error_messages = {"invalid": "cursor is not one this service issued"}

    def to_internal_value(self, data) -> Cursor:
        try:
            return cursor_decode(data)
        except InvalidCursor:
            self.fail("invalid")


@extend_schema_field({"type": "string", "enum": list(ORDERS), "default": "asc"})
class OrderField(_Param):
    default_error_messages = {"invalid": "must be asc (oldest first) or desc (newest first)"}

    def to_internal_value(self, data) -> str:
        if data not in ORDERS:
            self.fail("invalid")
        return data


@extend_schema_field({"type": "string", "pattern": MONTH_PATTERN, "example": "2026-11"})
class MonthField(_Param):
    """A calendar month in UTC, `YYYY-MM`."""

    default_error_messages = {"invalid": "must be a month as YYYY-MM, e.g. 2026-11"}

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str) or not _MONTH.fullmatch(data):
            self.fail("invalid")
        return data


class PageParams(serializers.Serializer):
    limit = LimitField(required=False, default=DEFAULT_PAGE_SIZE, help_text="Page size, 1 to 1000")
    cursor = CursorField(required=False, help_text="From `next`; opaque; keeps the order it was issued for")
    since = MomentField(required=False, help_text="RFC 3339, inclusive")
    until = MomentField(required=False, help_text="RFC 3339, exclusive")
    order = OrderField(
        required=False,
        default="asc",
        help_text="asc: oldest first, desc: newest first; a cursor keeps its own",
    )


class SpendingParams(serializers.Serializer):
    since = MonthField(required=False, help_text="First month (UTC) of `months`, YYYY-MM, inclusive")
    until = MonthField(required=False, help_text="Month (UTC) where `months` ends, YYYY-MM, exclusive")


def _userid_check(userid: str) -> None:
    try:
        parse_userid(userid)
    except InvalidPurchase as exc:
        raise serializers.ValidationError(str(exc)) from None


def read_params_validate(*, userid: str, query_params) -> dict:
    """The checked page parameters of a read of `userid`'s purchases; a ValidationError (400) otherwise.

    `order` is the order the page is read in: the cursor's when there is one.
    """
    _userid_check(userid)
    params = PageParams(data=query_params)
    params.is_valid(raise_exception=True)
    checked = params.validated_data
    if cursor := checked.get("cursor"):
        checked["order"] = cursor.order
    return checked


def spending_params_validate(*, userid: str, query_params) -> dict:
    """The checked parameters of a read of `userid`'s spending; a ValidationError (400) otherwise."""
    _userid_check(userid)
    params = SpendingParams(data=query_params)
    params.is_valid(raise_exception=True)
    return params.validated_data
