"""Writes: store a batch of purchase events exactly once, with the users' summaries and monthly totals."""

import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pymongo
from bson.decimal128 import Decimal128
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ledger import db
from ledger.documents import DeadLetterMark, MonthlyTotal, Purchase, UserSummary
from purchases_project.events import PurchaseEvent

ABORT_TIMEOUT_S = 2.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordResult:
    stored_ids: frozenset[str]
    duplicates: int

    @property
    def stored(self) -> int:
        return len(self.stored_ids)


def purchase_document(event: PurchaseEvent) -> dict:
    """What is written for one event: the Document's own validation and conversion."""
    purchase = Purchase(
        purchase_id=event.purchase_id,
        username=event.username,
        userid=event.userid,
        price=event.price,
        timestamp=event.timestamp,
    )
    purchase.validate()
    return purchase.to_mongo().to_dict()


def purchases_record(
    *,
    events: list[PurchaseEvent],
    dead_letter_marks: dict[str, int | None] | None = None,
    timeout_s: float | None = None,
) -> RecordResult:
    """Store the events not stored before and add them to their users' summaries.

    One transaction: it finds which purchase_ids exist, inserts only the new ones
    and increments the summaries by exactly those, so a redelivered event is never
    counted twice and a crash between the writes cannot make the summary drift.
    Within the batch the first event with a purchase_id wins. `dead_letter_marks`
    (mark key -> next offset, or None to clear) are written in the same transaction.
    `timeout_s` bounds the whole attempt, server selection included (pymongo's
    client-side operation timeout). Raises pymongo errors; the caller retries the
    whole batch, which is safe for the same reason.
    """
    unique: dict[str, PurchaseEvent] = {}
    for event in events:
        unique.setdefault(event.purchase_id, event)
    documents = {pid: purchase_document(event) for pid, event in unique.items()}
    marks = dead_letter_marks or {}
    if not documents and not marks:
        return RecordResult(stored_ids=frozenset(), duplicates=len(events))

    client = db.connect()
    purchases = Purchase._get_collection()
    new: list[PurchaseEvent] = []
    with client.start_session() as session, _session_ended_on_the_server_on_failure(client, session):
        with (
            pymongo.timeout(timeout_s),
            session.start_transaction(
                read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            ),
        ):
            if documents:
                existing = {
                    doc["purchase_id"]
                    for doc in purchases.find(
                        {"purchase_id": {"$in": list(documents)}},
                        {"purchase_id": 1, "_id": 0},
                        session=session,
                    )
                }
                new = [event for pid, event in unique.items() if pid not in existing]
            if new:
                purchases.insert_many(
                    [documents[event.purchase_id] for event in new], ordered=True, session=session
                )
                _summaries_add(new, session)
                _monthly_totals_add(new, session)
            if marks:
                _marks_write(marks, session)
    return RecordResult(
        stored_ids=frozenset(event.purchase_id for event in new), duplicates=len(events) - len(new)
    )


@contextmanager
def _session_ended_on_the_server_on_failure(client, session):
    """Kill the session on the server when an attempt fails.

    A failed attempt (its time budget spent, say) can leave its transaction open on the
    server: pymongo's own abort runs inside the spent budget and is never sent. The open
    transaction holds the summaries it touched, so every retry of the batch fails on a
    write conflict until the server's transaction lifetime (60 s) ends. killSessions
    aborts it at once, with a budget of its own.
    """
    try:
        yield
    except BaseException:
        try:
            with pymongo.timeout(ABORT_TIMEOUT_S):
                client.admin.command("killSessions", [session.session_id])
        except PyMongoError as exc:
            logger.warning("could not end a failed transaction's session: %s", exc)
        raise


def _summaries_add(new: list[PurchaseEvent], session) -> None:
    counts: dict[str, int] = defaultdict(int)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for event in new:
        counts[event.userid] += 1
        totals[event.userid] += event.price
    UserSummary._get_collection().bulk_write(
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


def _monthly_totals_add(new: list[PurchaseEvent], session) -> None:
    """Add the newly stored purchases to their users' months, as `_summaries_add` to the summaries."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for event in new:
        key = (event.userid, MonthlyTotal.month_of(event.timestamp))
        counts[key] += 1
        totals[key] += event.price
    MonthlyTotal._get_collection().bulk_write(
        [
            UpdateOne(
                {"_id": MonthlyTotal.key_for(userid, month)},
                {
                    "$setOnInsert": {"userid": userid, "month": month},
                    "$inc": {"count": counts[userid, month], "total": Decimal128(totals[userid, month])},
                },
                upsert=True,
            )
            for userid, month in counts
        ],
        ordered=False,
        session=session,
    )


def _marks_write(marks: dict[str, int | None], session) -> None:
    requests: list[DeleteOne | ReplaceOne[Any]] = []
    for key, next_offset in marks.items():
        if next_offset is None:
            requests.append(DeleteOne({"_id": key}))
        else:
            mark = DeadLetterMark(key=key, next_offset=next_offset)
            mark.validate()
            requests.append(ReplaceOne({"_id": key}, mark.to_mongo().to_dict(), upsert=True))
    DeadLetterMark._get_collection().bulk_write(requests, ordered=True, session=session)


def indexes_ensure() -> None:
    db.connect()
    Purchase.ensure_indexes()
    UserSummary.ensure_indexes()
    MonthlyTotal.ensure_indexes()
