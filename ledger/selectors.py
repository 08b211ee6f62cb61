"""Reads: one page of a user's purchases, and the user's all-time figures."""

from dataclasses import dataclass
from decimal import Decimal

import pymongo
from bson.decimal128 import Decimal128

from ledger import documents
from purchases_project.paging import cursor_encode

PAGE_FIELDS = ("purchase_id", "username", "userid", "price", "timestamp")
SORT = [("timestamp", 1), ("purchase_id", 1)]


def page_queries(
    *, userid: str, after: tuple[str, str] | None, since: str | None, until: str | None
) -> list[dict]:
    """The filters for one page, in sort order: read them one after another until full.

    Each is an equality on userid followed by ranges on the page index's next
    fields, so MongoDB answers each from the index (userid, timestamp,
    purchase_id), already in order. After a cursor there are two: the rest of the
    cursor's own timestamp by purchase_id (usually empty), then later timestamps.
    Two plain ranges instead of one `$or`, which some planners scan whole.
    """
    upper = {"$lt": until} if until is not None else {}
    if after is None:
        window = ({"$gte": since} if since is not None else {}) | upper
        return [{"userid": userid, "timestamp": window} if window else {"userid": userid}]
    after_timestamp, after_id = after
    queries = []
    if (since is None or since <= after_timestamp) and (until is None or after_timestamp < until):
        queries.append({"userid": userid, "timestamp": after_timestamp, "purchase_id": {"$gt": after_id}})
    lower = {"$gte": since} if since is not None and since > after_timestamp else {"$gt": after_timestamp}
    queries.append({"userid": userid, "timestamp": lower | upper})
    return queries


@dataclass(frozen=True)
class PurchasePage:
    purchases: list[dict]
    next_cursor: str | None


def user_purchases_page(
    *,
    userid: str,
    limit: int,
    after: tuple[str, str] | None = None,
    since: str | None = None,
    until: str | None = None,
) -> PurchasePage:
    """`after` is the decoded cursor: (timestamp, purchase_id) of the previous page's last purchase."""
    collection = documents.purchases()
    projection = {field: 1 for field in PAGE_FIELDS} | {"_id": 0}
    rows: list[documents.PurchaseDocument] = []
    for query in page_queries(userid=userid, after=after, since=since, until=until):
        wanted = limit + 1 - len(rows)  # one more than the page: is there a next?
        rows += collection.find(query, projection).sort(SORT).limit(wanted)
        if len(rows) > limit:
            break
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = cursor_encode(last["timestamp"], last["purchase_id"])
    purchases = [{**row, "price": row["price"].to_decimal()} for row in rows]
    return PurchasePage(purchases=purchases, next_cursor=next_cursor)


def user_summary_get(*, userid: str) -> tuple[int, Decimal]:
    """The user's all-time count and total, kept by the consumer; (0, 0) for a stranger."""
    summary = documents.summaries().find_one({"_id": userid})
    if summary is None:
        return 0, Decimal(0)
    total = summary["total"]
    return summary["count"], total.to_decimal() if isinstance(total, Decimal128) else Decimal(total)


def dead_letter_marks_get(*, keys: list[str], timeout_s: float | None = None) -> dict[str, int]:
    """The consumer's dead-letter marks for these keys (absent: nothing dead-lettered ahead)."""
    with pymongo.timeout(timeout_s):
        found = documents.marks().find({"_id": {"$in": keys}})
        return {doc["_id"]: doc["next_offset"] for doc in found}
