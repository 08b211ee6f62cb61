"""The purchase event: its rules and its wire format.

The storefront validates requests with these rules before it publishes, and the
consumer validates every event with the same rules before it stores one, so the
two apps share this module and nothing else.
"""

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("username", "userid", "price")
MAX_NAME_LENGTH = 200
MAX_PRICE = Decimal("1000000000")
CENTS = Decimal("0.01")
MAX_IDEMPOTENCY_KEY_LENGTH = 255

USERID_PATTERN = re.compile(r"[A-Za-z0-9\-_.@:+~]+")
_NUMBER_STRING = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Purchase ids made from an Idempotency-Key live in a namespace of their own.
IDEMPOTENCY_NAMESPACE = uuid.UUID("9a4f4bb6-6f7e-4c55-9d3e-2b7f4f0b7a11")


class InvalidPurchase(ValueError):
    """A purchase that breaks the contract's rules; the message is the client-facing text."""


def missing_fields(data: dict) -> list[str]:
    return [name for name in REQUIRED_FIELDS if data.get(name) is None]


def parse_price(value) -> Decimal:
    """The price as an exact Decimal with two places, or InvalidPurchase."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise InvalidPurchase("Price must be a valid number")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_STRING.fullmatch(text):
            raise InvalidPurchase("Price must be a valid number")
        value = Decimal(text)
    price = Decimal(value)
    if not price.is_finite():
        raise InvalidPurchase("Price must be a valid number")
    if price < 0:
        raise InvalidPurchase("Price cannot be negative")
    if price > MAX_PRICE:
        raise InvalidPurchase("Price cannot be above 1000000000")
    try:
        cents = price.quantize(CENTS)
    except InvalidOperation:  # more digits than the context holds: certainly not two places
        raise InvalidPurchase("Price cannot have more than 2 decimal places") from None
    if cents != price:
        raise InvalidPurchase("Price cannot have more than 2 decimal places")
    return abs(cents)  # abs() turns -0.00 into 0.00


def _check_name(field: str, value) -> str:
    if not isinstance(value, str):
        raise InvalidPurchase(f"{field} must be a string")
    if not value:
        raise InvalidPurchase(f"{field} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidPurchase(f"{field} must be at most {MAX_NAME_LENGTH} characters")
    return value


def parse_username(value) -> str:
    value = _check_name("username", value)
    if _CONTROL_CHARS.search(value) or not value.isprintable():
        raise InvalidPurchase("username must not contain control characters")
    return value


def parse_userid(value) -> str:
    value = _check_name("userid", value)
    if not USERID_PATTERN.fullmatch(value):
        raise InvalidPurchase("userid may contain only letters, digits and -_.@:+~")
    return value


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z. Fixed width, so it also sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 moment; one without a zone is taken as UTC."""
    if not isinstance(value, str):
        raise ValueError("timestamp must be a string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def idempotent_purchase_id(userid: str, key: str) -> str:
    # JSON of the pair is unambiguous: ("ab", "c") and ("a", "bc") never meet.
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, json.dumps([userid, key])))


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
        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "purchase_id": self.purchase_id,
                "username": self.username,
                "userid": self.userid,
                "price": str(self.price),
                "timestamp": self.timestamp,
            },
            separators=(",", ":"),
        ).encode()

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
            data = json.loads(value, parse_float=Decimal)
        except (UnicodeDecodeError, ValueError) as exc:
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
        except (TypeError, ValueError):
            raise InvalidPurchase("timestamp must be ISO 8601") from None
        return cls(
            purchase_id=purchase_id,
            username=parse_username(data["username"]),
            userid=parse_userid(data["userid"]),
            price=parse_price(price),
            timestamp=canonical,
        )
