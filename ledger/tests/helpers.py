"""Checks shared by the ledger's tests and the fault tests."""

import uuid
from decimal import Decimal

from bson.decimal128 import Decimal128

from ledger import services
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
    grouped = {
        row["_id"]: (row["count"], row["total"].to_decimal())
        for row in database["purchases"].aggregate(
            [{"$group": {"_id": "$userid", "count": {"$sum": 1}, "total": {"$sum": "$price"}}}]
        )
    }
    summaries = _summaries(database)
    return {
        userid: (grouped.get(userid), summaries.get(userid))
        for userid in set(grouped) | set(summaries)
        if grouped.get(userid) != summaries.get(userid)
    }


def monthly_totals_match_summaries(database) -> dict[str, tuple]:
    """For every user: the sum of their monthly totals against their summary (count, total).

    Returns the users whose figures differ (empty when the months add up everywhere).
    """
    months = {
        row["_id"]: (row["count"], row["total"].to_decimal())
        for row in database["purchases_monthly"].aggregate(
            [{"$group": {"_id": "$userid", "count": {"$sum": "$count"}, "total": {"$sum": "$total"}}}]
        )
    }
    summaries = _summaries(database)
    return {
        userid: (months.get(userid), summaries.get(userid))
        for userid in set(months) | set(summaries)
        if months.get(userid) != summaries.get(userid)
    }


def _summaries(database) -> dict[str, tuple]:
    return {
        doc["_id"]: (
            doc["count"],
            doc["total"].to_decimal() if isinstance(doc["total"], Decimal128) else Decimal(doc["total"]),
        )
        for doc in database["purchases_user_summaries"].find()
    }
