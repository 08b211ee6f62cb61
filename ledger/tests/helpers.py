"""Checks shared by the ledger's tests and the fault tests."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from bson.decimal128 import Decimal128

from devstack.stack import free_port
from ledger import db, services
from purchases_project.events import PurchaseEvent


def purchase_at(userid: str, timestamp: str, price: str) -> PurchaseEvent:
    """A purchase event of a moment of one's choosing (the stored fixed-width UTC text)."""
    return PurchaseEvent(
        purchase_id=str(uuid.uuid4()),
        username="ann",
        userid=userid,
        price=Decimal(price),
        timestamp=timestamp,
    )


def unreachable_mongodb_uri() -> str:
    """A MongoDB URI on a local port nobody listens on."""
    return f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"


@contextmanager
def database_unreachable(settings) -> Iterator[None]:
    """This process's database settings point nowhere (failing fast) while the block runs."""
    settings.MONGODB_URI = unreachable_mongodb_uri()
    settings.MONGODB_TIMEOUT_MS = 300
    db.close()
    try:
        yield
    finally:
        db.close()


def stored_purchases(userid: str, *purchases: tuple[str, str]) -> list[PurchaseEvent]:
    """Store purchases of (timestamp, price) as the consumer does, with their summary and months."""
    events = [purchase_at(userid, timestamp, price) for timestamp, price in purchases]
    services.purchases_record(events=events)
    return events


def assert_answered_from_index(cursor, index: str) -> None:
    """A query's winning plan reads the index named and nothing reads the whole collection.

    (The embedded server sorts in memory whatever the plan, so a SORT stage may remain.)
    """
    stages = []
    stage = cursor.explain()["queryPlanner"]["winningPlan"]
    while stage:
        stages.append(stage)
        stage = stage.get("inputStage")
    assert stages[-1]["stage"] == "IXSCAN" and stages[-1]["indexName"] == index, stages
    assert not any(s["stage"] == "COLLSCAN" for s in stages), stages


def summaries_match_purchases(database) -> dict[str, tuple]:
    """For every user: the summary document against a $group over the user's purchases.

    Returns the users whose figures differ (empty when none drifts).
    """
    grouped = _per_user(database["purchases"], count=1, total="$price")
    return _differences(grouped, _summaries(database))


def monthly_totals_match_summaries(database) -> dict[str, tuple]:
    """For every user: the sum of their monthly totals against their summary (count, total).

    Returns the users whose figures differ (empty when the months add up everywhere).
    """
    months = _per_user(database["purchases_monthly"], count="$count", total="$total")
    return _differences(months, _summaries(database))


def _per_user(collection, *, count, total) -> dict[str, tuple]:
    """(count, total) per userid: a $group summing `count` and `total` over `collection`."""
    rows = collection.aggregate(
        [{"$group": {"_id": "$userid", "count": {"$sum": count}, "total": {"$sum": total}}}]
    )
    return {row["_id"]: (row["count"], row["total"].to_decimal()) for row in rows}


def _differences(left: dict[str, tuple], right: dict[str, tuple]) -> dict[str, tuple]:
    return {
        userid: (left.get(userid), right.get(userid))
        for userid in set(left) | set(right)
        if left.get(userid) != right.get(userid)
    }


def _summaries(database) -> dict[str, tuple]:
    return {
        doc["_id"]: (
            doc["count"],
            doc["total"].to_decimal() if isinstance(doc["total"], Decimal128) else Decimal(doc["total"]),
        )
        for doc in database["purchases_user_summaries"].find()
    }
