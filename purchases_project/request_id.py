"""The id that follows one request through logs, the Kafka event and the ledger call."""

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
# Ids from clients are echoed into logs and headers: keep them short and plain.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:@+~/=-]{1,128}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_from(value: str | None) -> str:
    """The client's id when it is usable, otherwise a new one."""
    if value and _ACCEPTED.fullmatch(value):
        return value
    return uuid.uuid4().hex


def get() -> str | None:
    return _current.get()


def set(value: str | None):  # noqa: A001 - mirrors ContextVar.set
    return _current.set(value)


def reset(token) -> None:
    _current.reset(token)
