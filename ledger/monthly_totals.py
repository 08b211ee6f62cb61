"""Rebuild the per-user, per-month totals from the purchases (`manage.py rebuild_monthly_totals`).

The consumer keeps the monthly totals as it stores purchases (`services.purchases_record`);
this makes them again from what is stored: for purchases stored before the totals existed,
or after someone changed them by hand.
"""

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import pymongo
from pymongo import DeleteOne, ReplaceOne
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ledger import db
from ledger.documents import MonthlyTotal, Purchase


@dataclass(frozen=True)
class RebuildResult:
    users: int
    months_written: int
    months_removed: int


def monthly_totals_rebuild(*, timeout_s: float | None = None) -> RebuildResult:
    """Make every user's monthly totals equal a `$group` of their purchases by month.

    One transaction per user: it groups the user's purchases (page index) and writes only
    the months that differ, removing months without purchases. A consumer storing that
    user's purchases meanwhile either committed before the transaction's snapshot (and is
    in the group) or conflicts with it, and the user is done again, so running this beside
    a consumer loses no increment. Run twice, the second run writes nothing.
    `timeout_s` bounds each user's attempt.
    """
    client = db.connect()
    users = written = removed = 0
    for userid in _userids():
        with client.start_session() as session:

            def rebuild(session, userid=userid) -> tuple[int, int]:
                with pymongo.timeout(timeout_s):
                    return _user_months_rebuild(userid, session)

            changed = session.with_transaction(
                rebuild, read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            )
        users, written, removed = users + 1, written + changed[0], removed + changed[1]
    return RebuildResult(users=users, months_written=written, months_removed=removed)


def _userids() -> Iterator[str]:
    """Every userid with purchases or monthly totals, once each, in order (streamed)."""
    distinct = [{"$group": {"_id": "$userid"}}, {"$sort": {"_id": 1}}]
    streams = (
        (row["_id"] for row in collection.aggregate(distinct))
        for collection in (Purchase._get_collection(), MonthlyTotal._get_collection())
    )
    return (userid for userid, _ in groupby(heapq.merge(*streams)))


def _user_months_rebuild(userid: str, session) -> tuple[int, int]:
    by_month = [
        {"$match": {"userid": userid}},
        {
            "$group": {
                "_id": {"$substrBytes": ["$timestamp", 0, 7]},
                "count": {"$sum": 1},
                "total": {"$sum": "$price"},
            }
        },
    ]
    wanted = {
        MonthlyTotal.key_for(userid, row["_id"]): MonthlyTotal(
            key=MonthlyTotal.key_for(userid, row["_id"]),
            userid=userid,
            month=row["_id"],
            count=row["count"],
            total=row["total"].to_decimal(),
        )
        for row in Purchase._get_collection().aggregate(by_month, session=session)
    }
    monthly = MonthlyTotal._get_collection()
    # By _id: a document of the user's under any other _id (one made by hand, say) is stale.
    kept = {
        doc["_id"]: (doc["count"], doc["total"].to_decimal())
        for doc in monthly.find({"userid": userid}, session=session)
    }
    requests: list[DeleteOne | ReplaceOne[Any]] = []
    for key, document in wanted.items():
        if kept.get(key) != (document.count, document.total):
            document.validate()
            requests.append(ReplaceOne({"_id": key}, document.to_mongo().to_dict(), upsert=True))
    stale = [key for key in kept if key not in wanted]
    requests += [DeleteOne({"_id": key}) for key in stale]
    if requests:
        monthly.bulk_write(requests, ordered=True, session=session)
    return len(requests) - len(stale), len(stale)
