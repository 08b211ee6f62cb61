"""Checks shared by the ledger's tests and the fault tests."""

from decimal import Decimal

from bson.decimal128 import Decimal128


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
