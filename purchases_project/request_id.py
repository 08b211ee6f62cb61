"""The id that follows one request through logs, the Kafka event and the ledger call."""

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
MAX_LENGTH = 128
# Ids from clients are echoed into logs and headers: keep them short and plain.
_ACCEPTED = re.compile(rf"[A-Za-z0-9._:@+~/=-]{{1,{MAX_LENGTH}}}")
_NOT_ACCEPTED = re.compile(r"[^A-Za-z0-9._:@+~/=-]")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accepted(value: str) -> bool:
    """Whether an id from outside is usable as it is: short and plain."""
    return _ACCEPTED.fullmatch(value) is not None


def request_id_from(value: str | None) -> str:
    """The client's id when it is usable, otherwise a new one."""
    if value and accepted(value):
        return value
    return uuid.uuid4().hex


def loggable(value: object) -> str:
    """A request id from outside (an event's `x-request-id` header, say) as a log line may hold
    it: at most MAX_LENGTH characters, each outside a usable id's set replaced by `?`, so no
    line break, control or escape sequence reaches a text log and no id fills a line."""
    text = value if isinstance(value, str) else str(value)
    if accepted(text):
        return text
    return _NOT_ACCEPTED.sub("?", text[:MAX_LENGTH]) or "-"


def get() -> str | None:
    return _current.get()


def set(value: str | None):  # noqa: A001 - mirrors ContextVar.set
    return _current.set(value)


def reset(token) -> None:
    _current.reset(token)
