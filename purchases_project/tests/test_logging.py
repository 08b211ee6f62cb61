"""Log lines: a request id from outside the process cannot forge a line or fill one (pure logic)."""

import io
import logging

import pytest
from confluent_kafka import Message
from django.conf import settings

from purchases_project import request_id
from purchases_project.kafka_engine.dead_letters import request_id_of
from purchases_project.logging import RequestIdFilter

FORGED = "abc\n2026-12-05 10:00:00,000 ERROR   ledger.consumer [admin] refund issued\r\x1b[2K"


def text_line(message: str, **extra) -> str:
    """What the `text` handler of settings.LOGGING writes for one record."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["text"]["format"]))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("test.request_ids")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, extra=extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_the_consumers_request_id_from_a_topic_header_cannot_start_a_line():
    message = Message(
        topic="purchases", partition=0, offset=7, headers=[("x-request-id", FORGED.encode())], value=b"{}"
    )
    # As the consumer logs it: the header's id (the engine keeps only a usable one) in `extra`.
    written = text_line("dead-lettered an event", request_id=request_id_of(message))
    assert written.count("\n") == 1 and written.endswith("\n")
    assert "\r" not in written and "\x1b" not in written and "refund issued" not in written
    # And whatever id a record is given, the filter writes it plain.
    written = text_line("dead-lettered an event", request_id=FORGED)
    assert written.count("\n") == 1
    assert "[abc?2026-12-05?10:00:00?000?ERROR???ledger.consumer??admin??refund?issued???2K]" in written


@pytest.mark.parametrize(
    ("given", "logged"),
    [
        ("obs-1f2e3d", "obs-1f2e3d"),
        ("a" * 5000, "a" * request_id.MAX_LENGTH),
        ("ключ", "????"),
        ("\u2028x\u0085", "?x?"),
        (b"bytes\n", "b?bytes?n?"),
    ],
)
def test_a_request_id_from_outside_is_logged_plain_and_bounded(given, logged):
    assert request_id.loggable(given) == logged
    assert f"[{logged}]" in text_line("x", request_id=given)


def test_without_an_id_the_current_requests_is_logged():
    assert "[-] outside" in text_line("outside")
    token = request_id.set("req-42")
    try:
        assert "[req-42] inside" in text_line("inside")
    finally:
        request_id.reset(token)
