"""The purchase event and its wire format.

The storefront validates requests with the rules in `purchases_project.rules`
before it publishes, and the consumer validates every event with the same rules
before it stores one.
"""

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from purchases_project import jsonutil
from purchases_project.rules import InvalidPurchase, missing_fields, parse_price, parse_userid, parse_username

SCHEMA_VERSION = 1
MIN_IDEMPOTENCY_SECRET_LENGTH = 32


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z. Fixed width, so it also sorts as text."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # "...+00:00" -> "...Z"
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 moment; one without a zone is taken as UTC."""
    if not isinstance(value, str):
        raise ValueError("timestamp must be a string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def check_idempotency_secret() -> None:
    """Raise ImproperlyConfigured, with what to set, unless the storefront can derive ids."""
    if len(settings.IDEMPOTENCY_SECRET) < MIN_IDEMPOTENCY_SECRET_LENGTH:
        raise ImproperlyConfigured(
            f"IDEMPOTENCY_SECRET must be set, at least {MIN_IDEMPOTENCY_SECRET_LENGTH} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'): purchase ids for "
            "an Idempotency-Key are derived with it, and it must be the same on every storefront pod"
        )


def idempotent_purchase_id(userid: str, key: str, secret: str | None = None) -> str:
    """The purchase_id of `key` for `userid`: HMAC-SHA256 under the server's secret (default
    `IDEMPOTENCY_SECRET`) of the compact JSON of `[userid, key]`, its first 128 bits as a UUID
    (version 8, RFC 9562). JSON of the pair is unambiguous: ("ab", "c") and ("a", "bc") never
    meet; without the secret nobody can compute a customer's ids in advance. The same secret,
    userid and key give the same id on every pod, at any time (docs/decisions/0005)."""
    if secret is None:
        check_idempotency_secret()
        secret = settings.IDEMPOTENCY_SECRET
    digest = bytearray(hmac.digest(secret.encode(), orjson.dumps([userid, key]), "sha256")[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8: custom
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC's variant
    return str(uuid.UUID(bytes=bytes(digest)))


@dataclass(frozen=True, slots=True)
class PurchaseEvent:
    purchase_id: str
    username: str
    userid: str
    price: Decimal
    timestamp: str

    @classmethod
    def new(
        cls, *, username: str, userid: str, price: Decimal, idempotency_key: str | None = None
    ) -> "PurchaseEvent":
        purchase_id = (
            idempotent_purchase_id(userid, idempotency_key)
            if idempotency_key is not None
            else str(uuid.uuid4())
        )
        return cls(
            purchase_id=purchase_id,
            username=username,
            userid=userid,
            price=price,
            timestamp=format_timestamp(datetime.now(UTC)),
        )

    def as_message(self) -> bytes:
        return orjson.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "purchase_id": self.purchase_id,
                "username": self.username,
                "userid": self.userid,
                "price": str(self.price),
                "timestamp": self.timestamp,
            }
        )

    def as_response(self) -> dict:
        return {
            "purchase_id": self.purchase_id,
            "username": self.username,
            "userid": self.userid,
            "price": self.price,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_message(cls, value: bytes | None) -> "PurchaseEvent":
        """Decode and validate one event from the topic, or raise InvalidPurchase with the reason."""
        if value is None:
            raise InvalidPurchase("empty message")
        try:
            data = jsonutil.loads(value)
        except ValueError as exc:
            raise InvalidPurchase(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidPurchase("not a JSON object")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise InvalidPurchase(f"unsupported schema_version {data.get('schema_version')!r}")
        if missing := missing_fields(data) + [f for f in ("purchase_id", "timestamp") if data.get(f) is None]:
            raise InvalidPurchase(f"Missing required fields: {missing}")
        price = data["price"]
        if not isinstance(price, str):
            raise InvalidPurchase("price must travel as a decimal string")
        purchase_id = data["purchase_id"]
        try:
            purchase_id = str(uuid.UUID(purchase_id))
        except (TypeError, ValueError, AttributeError):
            raise InvalidPurchase("purchase_id must be a UUID") from None
        timestamp = data["timestamp"]
        try:
            canonical = format_timestamp(parse_timestamp(timestamp))
        except (TypeError, ValueError, OverflowError):
            raise InvalidPurchase("timestamp must be ISO 8601") from None
        return cls(
            purchase_id=purchase_id,
            username=parse_username(data["username"]),
            userid=parse_userid(data["userid"]),
            price=parse_price(price),
            timestamp=canonical,
        )
