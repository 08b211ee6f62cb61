"""Writes: store a batch of purchase events exactly once, with the users' summaries."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from bson.decimal128 import Decimal128
from pymongo import UpdateOne
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ledger import db
from ledger.documents import Purchase, UserSummary
from purchases_project.events import PurchaseEvent


@dataclass(frozen=True)
class RecordResult:
    stored_ids: frozenset[str]
    duplicates: int

    @property
    def stored(self) -> int:
        return len(self.stored_ids)


def purchases_record(*, events: list[PurchaseEvent]) -> RecordResult:
    """Store the events not stored before and add them to their users' summaries.

    One transaction: it finds which purchase_ids exist, inserts only the new ones
    and increments the summaries by exactly those, so a redelivered event is never
    counted twice and a crash between the writes cannot make the summary drift.
    Within the batch the first event with a purchase_id wins. Raises pymongo errors
    (the caller retries the whole batch; a retry is safe for the same reason).
    """
    unique: dict[str, PurchaseEvent] = {}
    for event in events:
        unique.setdefault(event.purchase_id, event)
    if not unique:
        return RecordResult(stored_ids=frozenset(), duplicates=len(events))

    client = db.connect()
    purchases = Purchase._get_collection()
    summaries = UserSummary._get_collection()
    with client.start_session() as session:
        with session.start_transaction(
            read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
        ):
            existing = {
                doc["purchase_id"]
                for doc in purchases.find(
                    {"purchase_id": {"$in": list(unique)}},
                    {"purchase_id": 1, "_id": 0},
                    session=session,
                )
            }
            new = [event for pid, event in unique.items() if pid not in existing]
            if new:
                purchases.insert_many(
                    [
                        {
                            "purchase_id": event.purchase_id,
                            "username": event.username,
                            "userid": event.userid,
                            "price": Decimal128(event.price),
                            "timestamp": event.timestamp,
                        }
                        for event in new
                    ],
                    ordered=True,
                    session=session,
                )
                counts: dict[str, int] = defaultdict(int)
                totals: dict[str, Decimal] = defaultdict(Decimal)
                for event in new:
                    counts[event.userid] += 1
                    totals[event.userid] += event.price
                summaries.bulk_write(
                    [
                        UpdateOne(
                            {"_id": userid},
                            {"$inc": {"count": counts[userid], "total": Decimal128(totals[userid])}},
                            upsert=True,
                        )
                        for userid in counts
                    ],
                    ordered=False,
                    session=session,
                )
    return RecordResult(
        stored_ids=frozenset(event.purchase_id for event in new), duplicates=len(events) - len(new)
    )


def indexes_ensure() -> None:
    db.connect()
    Purchase.ensure_indexes()
    UserSummary.ensure_indexes()
