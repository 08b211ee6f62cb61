"""Writes: store a batch of purchase events exactly once, with the users' summaries and monthly totals."""

import enum
import logging
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import pymongo
from bson.decimal128 import Decimal128
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.errors import CollectionInvalid, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ledger import db, documents
from purchases_project.events import PurchaseEvent

ABORT_TIMEOUT_S = 2.0
K = TypeVar("K", bound=Hashable)
logger = logging.getLogger(__name__)


class Recorded(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # stored before (or earlier in the batch) for the same userid
    CONFLICT = "conflict"  # its purchase_id is stored for another userid: not this user's purchase


@dataclass(frozen=True)
class RecordResult:
    events: tuple[PurchaseEvent, ...]
    recorded: tuple[Recorded, ...]  # one per event, in order

    @property
    def stored_ids(self) -> frozenset[str]:
        return frozenset(
            e.purchase_id for e, r in zip(self.events, self.recorded, strict=False) if r is Recorded.STORED
        )

    @property
    def stored(self) -> int:
        return self.recorded.count(Recorded.STORED)

    @property
    def duplicates(self) -> int:
        return self.recorded.count(Recorded.DUPLICATE)


def purchases_record(*, events: list[PurchaseEvent], timeout_s: float | None = None) -> RecordResult:
    """Store the events not stored before and add them to their users' summaries and months.

    One transaction: it finds which purchase_ids exist (and whose they are), inserts
    only the new ones and increments the summaries by exactly those, so a redelivered
    event is never counted twice and a crash between the writes cannot make the
    summary drift. Within the batch the first event with a purchase_id wins. An event
    whose purchase_id belongs to another userid is a conflict, never a duplicate.
    `timeout_s` bounds the whole attempt, server selection included (pymongo's
    client-side operation timeout). Raises pymongo errors; the caller retries the
    whole batch, which is safe for the same reason.
    """
    first: dict[str, PurchaseEvent] = {}
    for event in events:
        first.setdefault(event.purchase_id, event)
    owners: dict[str, str] = {}
    new: list[PurchaseEvent] = []
    if first:
        with _transaction(timeout_s) as session:
            found = documents.purchases().find(
                {"purchase_id": {"$in": list(first)}},
                {"purchase_id": 1, "userid": 1, "_id": 0},
                session=session,
            )
            owners = {doc["purchase_id"]: doc["userid"] for doc in found}
            new = [event for pid, event in first.items() if pid not in owners]
            if new:
                documents.purchases().insert_many(
                    [_purchase_document(event) for event in new], ordered=True, session=session
                )
                documents.summaries().bulk_write(_summary_increments(new), ordered=False, session=session)
                documents.monthly().bulk_write(_monthly_increments(new), ordered=False, session=session)
    new_ids = {event.purchase_id for event in new}
    owners.update({event.purchase_id: event.userid for event in new})
    recorded: list[Recorded] = []
    for event in events:
        if event.purchase_id in new_ids:
            new_ids.discard(event.purchase_id)  # the first event with the id: later ones are copies
            recorded.append(Recorded.STORED)
        elif owners[event.purchase_id] == event.userid:
            recorded.append(Recorded.DUPLICATE)
        else:
            recorded.append(Recorded.CONFLICT)
    return RecordResult(events=tuple(events), recorded=tuple(recorded))


def _purchase_document(event: PurchaseEvent) -> documents.PurchaseDocument:
    return documents.purchase_document(
        purchase_id=event.purchase_id,
        username=event.username,
        userid=event.userid,
        price=event.price,
        timestamp=event.timestamp,
    )


def _sums(new: list[PurchaseEvent], key: Callable[[PurchaseEvent], K]) -> dict[K, tuple[int, Decimal]]:
    """(count, total) of the new purchases per `key`, in the order the keys first appear."""
    sums: dict[K, tuple[int, Decimal]] = {}
    for event in new:
        count, total = sums.get(key(event), (0, Decimal(0)))
        sums[key(event)] = (count + 1, total + event.price)
    return sums


def _summary_increments(new: list[PurchaseEvent]) -> list[UpdateOne]:
    """The batch's per-user increments: one upsert per user, by exactly the new purchases."""
    return [
        UpdateOne({"_id": userid}, {"$inc": {"count": count, "total": Decimal128(total)}}, upsert=True)
        for userid, (count, total) in _sums(new, lambda event: event.userid).items()
    ]


def _monthly_increments(new: list[PurchaseEvent]) -> list[UpdateOne]:
    """The batch's per-user, per-month increments, as `_summary_increments` for the summaries."""
    by_month = _sums(new, lambda event: (event.userid, documents.month_of(event.timestamp)))
    return [
        UpdateOne(
            {"_id": documents.monthly_key(userid, month)},
            {
                "$setOnInsert": {"userid": userid, "month": month},
                "$inc": {"count": count, "total": Decimal128(total)},
            },
            upsert=True,
        )
        for (userid, month), (count, total) in by_month.items()
    ]


@contextmanager
def _transaction(timeout_s: float | None) -> Iterator[ClientSession]:
    """A snapshot transaction bounded by `timeout_s`, its session killed on the server if it fails.

    A failed attempt (its time budget spent, say) can leave its transaction open on the
    server: pymongo's own abort runs inside the spent budget and is never sent. The open
    transaction holds the summaries it touched, so every retry of the batch fails on a
    write conflict until the server's transaction lifetime (60 s) ends. killSessions
    aborts it at once, with a budget of its own.
    """
    client = db.connect()
    with client.start_session() as session, _session_ended_on_the_server_on_failure(client, session):
        with (
            pymongo.timeout(timeout_s),
            session.start_transaction(
                read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            ),
        ):
            yield session


@contextmanager
def _session_ended_on_the_server_on_failure(
    client: pymongo.MongoClient[Any], session: ClientSession
) -> Iterator[None]:
    try:
        yield
    except BaseException:
        try:
            with pymongo.timeout(ABORT_TIMEOUT_S):
                client.admin.command("killSessions", [session.session_id])
        except PyMongoError as exc:
            logger.warning("could not end a failed transaction's session: %s", exc)
        raise


def dead_letter_marks_put(*, marks: dict[str, int | None], timeout_s: float | None = None) -> None:
    """Set (or, for None, clear) the consumer's dead-letter marks by key."""
    requests: list[DeleteOne | ReplaceOne[documents.DeadLetterMarkDocument]] = [
        DeleteOne({"_id": key})
        if next_offset is None
        else ReplaceOne({"_id": key}, {"_id": key, "next_offset": next_offset}, upsert=True)
        for key, next_offset in marks.items()
    ]
    with pymongo.timeout(timeout_s):
        documents.marks().bulk_write(requests, ordered=True)


def indexes_ensure() -> list[str]:
    """Create the collections with their `$jsonSchema` validators, and their indexes (each a
    no-op when already there); returns warnings (a validator this user may not install on a
    collection that exists without it)."""
    database = documents.database()
    existing = {info["name"]: info.get("options", {}) for info in database.list_collections()}
    warnings = []
    for kind, name in documents.collection_names().items():
        validator = {"$jsonSchema": documents.SCHEMAS[kind]}
        if name not in existing:
            try:
                database.create_collection(name, validator=validator, validationLevel="strict")
                existing[name] = {"validator": validator}
            except (CollectionInvalid, OperationFailure):  # another process made it first
                existing[name] = {}
        if existing[name].get("validator") != validator:
            try:
                database.command("collMod", name, validator=validator, validationLevel="strict")
            except OperationFailure as exc:  # e.g. a user without the collMod privilege
                warnings.append(f"validator not installed on {name}: {exc.details or exc}")
        if documents.INDEXES[kind]:
            database[name].create_indexes(documents.INDEXES[kind])
    return warnings
