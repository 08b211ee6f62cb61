"""Log records carry the current request id (or "-" outside a request)."""

import logging

from purchases_project import request_id


class RequestIdFilter(logging.Filter):
    """The current request's id (already checked by the middleware), or the one a record was
    given (the consumer's, from an event's header: from outside, so made safe to log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        given = getattr(record, "request_id", None)
        record.request_id = request_id.loggable(given) if given else (request_id.get() or "-")
        return True


class UnexpectedErrorsOnly(logging.Filter):
    """Keeps django.request's records of unhandled exceptions, drops its line per 4xx/5xx answer
    (the views log what went wrong themselves, with the request id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None


class RejectedRequestsAsWarnings(logging.Filter):
    """django.security's records (a disallowed Host header, say) are a client's mistake, not
    the server's: a WARNING line with the reason, without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True
