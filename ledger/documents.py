"""What the ledger keeps in MongoDB.

`Purchase`: one document per purchase, unique by `purchase_id`. The compound
index (userid, timestamp, purchase_id) serves "one user's purchases, oldest
first", including cursor pages. `timestamp` is kept as the event's fixed-width
ISO 8601 text (microseconds, Z), which sorts exactly as time does and, unlike a
BSON date, keeps the microseconds.

`UserSummary`: per-user count and total, updated by the consumer in the same
transaction as the purchases it newly stores, so it never drifts from them.
"""

from django.conf import settings
from mongoengine import Document, IntField, StringField
from mongoengine.fields import Decimal128Field

PAGE_INDEX = "userid_timestamp_purchase_id"


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
