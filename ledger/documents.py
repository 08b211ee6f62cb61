"""What the ledger keeps in MongoDB.

`Purchase`: one document per purchase, unique by `purchase_id`. The compound
index (userid, timestamp, purchase_id) serves "one user's purchases, oldest
first", including cursor pages. `timestamp` is kept as the event's fixed-width
ISO 8601 text (microseconds, Z), which sorts exactly as time does and, unlike a
BSON date, keeps the microseconds.

`UserSummary`: per-user count and total, updated by the consumer in the same
transaction as the purchases it newly stores, so it never drifts from them.

`MonthlyTotal`: per user and calendar month (UTC, `YYYY-MM`), the count and total
of the purchases in it, updated in the same transaction as the summary, so the
months always add up to it. Its `_id` is made of the pair, so upserts keep one
document per pair even before the unique index (userid, month) exists; that
index serves "one user's months, oldest first".

`DeadLetterMark`: per consumer group and partition with an open run of invalid
events, the offset below which that run is already dead-lettered. Offsets stay
committed at the run's first event until the run ends, so a restarted consumer
reads the run again; the mark keeps it from dead-lettering any event twice.

The consumer writes what these Documents produce (`validate()`, `to_mongo()`),
in bulk through the collection (docs/decisions/0009).
"""

from django.conf import settings
from mongoengine import Document, IntField, StringField
from mongoengine.fields import Decimal128Field

PAGE_INDEX = "userid_timestamp_purchase_id"
MONTH_INDEX = "userid_month"


class Purchase(Document):
    purchase_id = StringField(required=True, unique=True)
    username = StringField(required=True)
    userid = StringField(required=True)
    price = Decimal128Field(required=True, precision=2)
    timestamp = StringField(required=True)

    meta = {
        "collection": settings.MONGODB_COLLECTION,
        "indexes": [{"fields": ["userid", "timestamp", "purchase_id"], "name": PAGE_INDEX}],
        "auto_create_index_on_save": False,
    }


class UserSummary(Document):
    userid = StringField(primary_key=True)
    count = IntField(required=True, default=0)
    total = Decimal128Field(required=True, precision=2)

    meta = {"collection": f"{settings.MONGODB_COLLECTION}_user_summaries"}


class MonthlyTotal(Document):
    key = StringField(primary_key=True)  # "<userid>|<month>"
    userid = StringField(required=True)
    month = StringField(required=True)
    count = IntField(required=True, default=0)
    total = Decimal128Field(required=True, precision=2)

    meta = {
        "collection": f"{settings.MONGODB_COLLECTION}_monthly",
        "indexes": [{"fields": ["userid", "month"], "unique": True, "name": MONTH_INDEX}],
        # Created by ensure_indexes only: the consumer first touches this collection inside its
        # transaction, where a createIndexes of its own would conflict with the transaction.
        "auto_create_index": False,
        "auto_create_index_on_save": False,
    }

    @staticmethod
    def key_for(userid: str, month: str) -> str:
        return f"{userid}|{month}"

    @staticmethod
    def month_of(timestamp: str) -> str:
        """The UTC month of a stored timestamp (fixed-width ISO 8601 text, so its first 7 characters)."""
        return timestamp[:7]


class DeadLetterMark(Document):
    key = StringField(primary_key=True)  # "<group>|<topic>|<partition>"
    next_offset = IntField(required=True, min_value=0)

    meta = {"collection": f"{settings.MONGODB_COLLECTION}_dead_letter_marks"}

    @staticmethod
    def key_for(group: str, topic: str, partition: int) -> str:
        return f"{group}|{topic}|{partition}"
