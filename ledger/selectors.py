"""Reads: one page of a user's purchases, and the user's all-time figures."""

import base64
import binascii
import json
from dataclasses import dataclass
from decimal import Decimal

from bson.decimal128 import Decimal128

from ledger import db
from ledger.documents import PAGE_INDEX, Purchase, UserSummary

PAGE_FIELDS = ("purchase_id", "username", "userid", "price", "timestamp")
SORT = [("timestamp", 1), ("purchase_id", 1)]


class InvalidCursor(ValueError):
    pass


def cursor_encode(timestamp: str, purchase_id: str) -> str:
    raw = json.dumps([timestamp, purchase_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp, purchase_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this service issued") from None
    if not isinstance(timestamp, str) or not isinstance(purchase_id, str):
        raise InvalidCursor("cursor is not one this service issued")
    return timestamp, purchase_id


def page_query(*, userid: str, after: tuple[str, str] | None, since: str | None, until: str | None) -> dict:
    """The filter for one page: equality on userid, a range on timestamp, then purchase_id.

    Every clause is on the page index's fields in its order, so MongoDB bounds
    the index scan by (userid, timestamp range), walks it in sort order and
    checks the purchase_id tie-break on the index keys.
    """
    timestamp: dict = {}
    if since is not None:
        timestamp["$gte"] = since
    if after is not None:
        after_timestamp, after_id = after
        timestamp["$gte"] = max(after_timestamp, timestamp.get("$gte", after_timestamp))
    if until is not None:
        timestamp["$lt"] = until
    query: dict = {"userid": userid}
    if timestamp:
        query["timestamp"] = timestamp
    if after is not None:
        # Strictly after the cursor in (timestamp, purchase_id) order.
        query["$or"] = [
            {"timestamp": {"$gt": after_timestamp}},
            {"purchase_id": {"$gt": after_id}},
        ]
    return query


@dataclass(frozen=True)
class PurchasePage:
    purchases: list[dict]
    next_cursor: str | None


def user_purchases_page(
    *,
    userid: str,
    limit: int,
    cursor: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> PurchasePage:
    db.connect()
    after = cursor_decode(cursor) if cursor else None
    query = page_query(userid=userid, after=after, since=since, until=until)
    documents = list(
        Purchase._get_collection()
        .find(query, {field: 1 for field in PAGE_FIELDS} | {"_id": 0})
        .sort(SORT)
        .hint(PAGE_INDEX)
        .limit(limit + 1)
    )
    next_cursor = None
    if len(documents) > limit:
        documents = documents[:limit]
        last = documents[-1]
        next_cursor = cursor_encode(last["timestamp"], last["purchase_id"])
    for document in documents:
        document["price"] = document["price"].to_decimal()
    return PurchasePage(purchases=documents, next_cursor=next_cursor)


def user_summary_get(*, userid: str) -> tuple[int, Decimal]:
    """The user's all-time count and total, kept by the consumer; (0, 0) for a stranger."""
    db.connect()
    summary = UserSummary._get_collection().find_one({"_id": userid})
    if summary is None:
        return 0, Decimal(0)
    total = summary["total"]
    return summary["count"], total.to_decimal() if isinstance(total, Decimal128) else Decimal(total)
