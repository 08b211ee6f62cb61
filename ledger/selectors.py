"""Reads: one page of a user's purchases, the user's all-time figures, and their spending per month."""

from dataclasses import dataclass
from decimal import Decimal

import pymongo
from bson.decimal128 import Decimal128

from ledger import db
from ledger.documents import DeadLetterMark, MonthlyTotal, Purchase, UserSummary
from purchases_project.paging import cursor_encode

PAGE_FIELDS = ("purchase_id", "username", "userid", "price", "timestamp")
SORT = [("timestamp", 1), ("purchase_id", 1)]
SORTS = {"asc": SORT, "desc": [("timestamp", -1), ("purchase_id", -1)]}


def page_queries(
    *,
    userid: str,
    after: tuple[str, str] | None,
    since: str | None,
    until: str | None,
    order: str = "asc",
) -> list[dict]:
    """The filters for one page, in sort order: read them one after another until full.

    Each is an equality on userid followed by ranges on the page index's next
    fields, so MongoDB answers each from the index (userid, timestamp,
    purchase_id), already in order (walked backwards for `desc`). After a cursor
    there are two: the rest of the cursor's own timestamp by purchase_id (usually
    empty), then later timestamps (earlier ones for `desc`). Two plain ranges
    instead of one `$or`, which some planners scan whole.
    """
    lower = {"$gte": since} if since is not None else {}
    upper = {"$lt": until} if until is not None else {}
    if after is None:
        window = lower | upper
        return [{"userid": userid, "timestamp": window} if window else {"userid": userid}]
    after_timestamp, after_id = after
    queries = []
    if (since is None or since <= after_timestamp) and (until is None or after_timestamp < until):
        beyond = "$lt" if order == "desc" else "$gt"
        queries.append({"userid": userid, "timestamp": after_timestamp, "purchase_id": {beyond: after_id}})
    if order == "desc":
        upper = upper if until is not None and until <= after_timestamp else {"$lt": after_timestamp}
    else:
        lower = lower if since is not None and since > after_timestamp else {"$gt": after_timestamp}
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
    order: str = "asc",
) -> PurchasePage:
    """`after` is the decoded cursor: (timestamp, purchase_id) of the previous page's last purchase."""
    db.connect()
    collection = Purchase._get_collection()
    projection = {field: 1 for field in PAGE_FIELDS} | {"_id": 0}
    documents: list[dict] = []
    for query in page_queries(userid=userid, after=after, since=since, until=until, order=order):
        wanted = limit + 1 - len(documents)  # one more than the page: is there a next?
        documents += collection.find(query, projection).sort(SORTS[order]).limit(wanted)
        if len(documents) > limit:
            break
    next_cursor = None
    if len(documents) > limit:
        documents = documents[:limit]
        last = documents[-1]
        next_cursor = cursor_encode(last["timestamp"], last["purchase_id"], order)
    for document in documents:
        document["price"] = document["price"].to_decimal()
    return PurchasePage(purchases=documents, next_cursor=next_cursor)


def _decimal(value) -> Decimal:
    return value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)


def user_summary_get(*, userid: str) -> tuple[int, Decimal]:
    """The user's all-time count and total, kept by the consumer; (0, 0) for a stranger."""
    db.connect()
    summary = UserSummary._get_collection().find_one({"_id": userid})
    if summary is None:
        return 0, Decimal(0)
    return summary["count"], _decimal(summary["total"])


@dataclass(frozen=True)
class Spending:
    months: list[dict]  # {"month": "YYYY-MM", "count", "total"}, oldest first
    count: int
    total: Decimal


def user_spending_get(*, userid: str, since: str | None = None, until: str | None = None) -> Spending:
    """The user's spending per month (UTC) from the totals the consumer keeps, never the purchases.

    One range of the index (userid, month): the user's months, oldest first, one small
    document each, so the cost grows with the months a user bought in, not with their
    purchases. `since`/`until` (`YYYY-MM`, inclusive/exclusive) narrow `months`; `count`
    and `total` are all-time, summed from the same read, so they always agree with it.
    """
    db.connect()
    found = MonthlyTotal._get_collection().find(
        {"userid": userid}, {"month": 1, "count": 1, "total": 1, "_id": 0}
    )
    months, count, total = [], 0, Decimal(0)
    for doc in found.sort("month", 1):
        month = {"month": doc["month"], "count": doc["count"], "total": _decimal(doc["total"])}
        count, total = count + month["count"], total + month["total"]
        if (since is None or since <= month["month"]) and (until is None or month["month"] < until):
            months.append(month)
    return Spending(months=months, count=count, total=total)


def dead_letter_marks_get(*, keys: list[str], timeout_s: float | None = None) -> dict[str, int]:
    """The consumer's dead-letter marks for these keys (absent: nothing dead-lettered ahead)."""
    db.connect()
    with pymongo.timeout(timeout_s):
        found = DeadLetterMark._get_collection().find({"_id": {"$in": keys}})
        return {doc["_id"]: doc["next_offset"] for doc in found}
