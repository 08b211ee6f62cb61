"""What the ledger keeps in MongoDB: typed documents, the server-side schema that guards
them, and their indexes (decision 0009).

`purchases`: one document per purchase, unique by `purchase_id`. The compound index
(userid, timestamp, purchase_id) serves "one user's purchases, oldest first",
including cursor pages. `timestamp` is kept as the event's fixed-width ISO 8601 text
(microseconds, Z), which sorts exactly as time does and, unlike a BSON date, keeps
the microseconds.

`purchases_user_summaries`: per-user count and total, updated by the consumer in the
same transaction as the purchases it newly stores, so it never drifts from them.

`purchases_monthly`: per user and calendar month (UTC, `YYYY-MM`), the count and total of
the purchases in it, updated in the same transaction as the summary, so the months always
add up to it (decision 0021). Its `_id` is the pair, so upserts keep one document per pair
even before the unique index (userid, month) exists; that index serves "one user's months,
oldest first".

`purchases_dead_letter_marks`: per consumer group and partition with an open run of
invalid events, the offset below which that run is already dead-lettered (the
engine's `MarkStore`, decision 0008).

Each collection carries a `$jsonSchema` validator that `ensure_indexes` installs: the
server refuses a document that breaks it, whoever writes it. The `TypedDict`s say the
same to the type checker.
"""

from decimal import Decimal
from typing import Any, TypedDict

from bson.decimal128 import Decimal128
from django.conf import settings
from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database

from ledger import db
from purchases_project.rules import MAX_NAME_LENGTH

PAGE_INDEX = "userid_timestamp_purchase_id"
MONTH_INDEX = "userid_month"
MAX_TEXT = MAX_NAME_LENGTH  # the rules' own bound on usernames and userids
VALIDATION_FAILED = 121  # DocumentValidationFailure


class PurchaseDocument(TypedDict):
    purchase_id: str
    username: str
    userid: str
    price: Decimal128
    timestamp: str


class UserSummaryDocument(TypedDict):
    _id: str  # the userid
    count: int
    total: Decimal128


class MonthlyTotalDocument(TypedDict):
    _id: str  # "<userid>|<month>"
    userid: str
    month: str  # YYYY-MM, UTC
    count: int
    total: Decimal128


class DeadLetterMarkDocument(TypedDict):
    _id: str  # "<group>|<topic>|<partition>"
    next_offset: int


def _text(max_length: int = MAX_TEXT) -> dict[str, Any]:
    return {"bsonType": "string", "minLength": 1, "maxLength": max_length}


_INTEGER = {"bsonType": ["int", "long"], "minimum": 0}
SCHEMAS: dict[str, dict[str, Any]] = {
    "purchases": {
        "bsonType": "object",
        "required": ["purchase_id", "username", "userid", "price", "timestamp"],
        "properties": {
            "purchase_id": _text(36),
            "username": _text(),
            "userid": _text(),
            "price": {"bsonType": "decimal"},
            "timestamp": _text(27),
        },
    },
    "summaries": {
        "bsonType": "object",
        "required": ["_id", "count", "total"],
        "properties": {"_id": _text(), "count": _INTEGER, "total": {"bsonType": "decimal"}},
    },
    "monthly": {
        "bsonType": "object",
        "required": ["_id", "userid", "month", "count", "total"],
        "properties": {
            "_id": _text(MAX_TEXT + 8),
            "userid": _text(),
            "month": _text(7),
            "count": _INTEGER,
            "total": {"bsonType": "decimal"},
        },
    },
    "marks": {
        "bsonType": "object",
        "required": ["_id", "next_offset"],
        "properties": {"_id": _text(1000), "next_offset": _INTEGER},
    },
}
INDEXES: dict[str, list[IndexModel]] = {
    "purchases": [
        IndexModel([("purchase_id", ASCENDING)], unique=True, name="purchase_id_1"),
        IndexModel(
            [("userid", ASCENDING), ("timestamp", ASCENDING), ("purchase_id", ASCENDING)], name=PAGE_INDEX
        ),
    ],
    "summaries": [],
    "monthly": [IndexModel([("userid", ASCENDING), ("month", ASCENDING)], unique=True, name=MONTH_INDEX)],
    "marks": [],
}


def collection_names() -> dict[str, str]:
    base = settings.MONGODB_COLLECTION
    return {
        "purchases": base,
        "summaries": f"{base}_user_summaries",
        "monthly": f"{base}_monthly",
        "marks": f"{base}_dead_letter_marks",
    }


def database() -> Database[Any]:
    return db.connect()[settings.MONGODB_DATABASE]


def purchases() -> Collection[PurchaseDocument]:
    return database().get_collection(collection_names()["purchases"])


def summaries() -> Collection[UserSummaryDocument]:
    return database().get_collection(collection_names()["summaries"])


def monthly() -> Collection[MonthlyTotalDocument]:
    return database().get_collection(collection_names()["monthly"])


def marks() -> Collection[DeadLetterMarkDocument]:
    return database().get_collection(collection_names()["marks"])


def purchase_document(
    *, purchase_id: str, username: str, userid: str, price: Decimal, timestamp: str
) -> PurchaseDocument:
    return {
        "purchase_id": purchase_id,
        "username": username,
        "userid": userid,
        "price": Decimal128(price),
        "timestamp": timestamp,
    }


def mark_key(group: str, topic: str, partition: int) -> str:
    return f"{group}|{topic}|{partition}"


def monthly_key(userid: str, month: str) -> str:
    return f"{userid}|{month}"


def month_of(timestamp: str) -> str:
    """The UTC month of a stored timestamp (fixed-width ISO 8601 text, so its first 7 characters)."""
    return timestamp[:7]
