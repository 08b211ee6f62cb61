"""One client per process (`PerProcess`), the apps' per-worker steps, and the RSGI adapter's
pure parts (the WSGI environ it builds, its refusal to run without granian's init hook)."""

import asyncio
import os

import pytest
from django.apps import apps

from purchases_project import per_process
from purchases_project.per_process import PerProcess
from purchases_project.rsgi import DjangoRSGI, environ_from
from storefront import ledger_client, producer


def in_forked_child(check) -> bool:
    """Runs `check()` in a forked child; True if it returned true there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's cleanup
        ok = False
        try:
            ok = bool(check())
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    try:
        return os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)


def test_a_forked_child_makes_its_own_client_and_keeps_it():
    clients = PerProcess(object)
    parents = clients.get()
    assert clients.get() is parents

    def child_has_its_own():
        mine = clients.get()
        return mine is not parents and clients.get() is mine

    assert in_forked_child(child_has_its_own)
    assert clients.get() is parents  # the parent's is untouched


def test_the_ledger_session_is_per_process():
    ledger_client.close_session()
    parents = ledger_client._session.get()
    try:
        assert in_forked_child(lambda: ledger_client._session.get() is not parents)
        assert ledger_client._session.get() is parents
    finally:
        ledger_client.close_session()


def test_an_unusable_client_is_discarded_and_replaced():
    discarded = []
    clients = PerProcess(
        lambda: {"broken": False}, usable=lambda c: not c["broken"], discard=discarded.append
    )
    first = clients.get()
    first["broken"] = True
    second = clients.get()
    assert second is not first and discarded == [first]
    assert clients.take() is second and clients.take() is None
    assert clients.get() is not second


def test_stop_steps_all_run_last_registered_first_even_when_one_fails(monkeypatch):
    monkeypatch.setattr(per_process, "_stops", [])
    ran = []

    def failing():
        ran.append("failing")
        raise RuntimeError("flush failed")

    per_process.on_stop(lambda: ran.append("first"))
    per_process.on_stop(failing)
    per_process.stopping()
    assert ran == ["failing", "first"]


def test_the_storefront_registers_its_producer_for_each_worker(settings, monkeypatch):
    monkeypatch.setattr(per_process, "_starts", [])
    monkeypatch.setattr(per_process, "_stops", [])
    settings.SERVICE_ROLE = "ledger"
    apps.get_app_config("storefront").ready()
    assert per_process._starts == []
    settings.SERVICE_ROLE = "storefront"
    apps.get_app_config("storefront").ready()
    assert per_process._starts == [producer.get_producer]
    assert per_process._stops == [producer.close_producer]


class Scope:
    proto = "http"
    http_version = "1.1"
    server = "127.0.0.1:8000"
    client = "[::1]:50000"
    scheme = "http"
    method = "POST"
    path = "/getAllUserBuys/josé"
    query_string = "limit=5"

    def __init__(self, headers, dropped=()):
        self.headers = Headers(headers, dropped)


class Headers:
    """granian's RSGI headers as the spec describes them: lower-case names, repeats kept; a
    value that is not visible ASCII is left out of items() and get(), its name kept in keys()
    (granian 2.x, as a request with `Idempotency-Key: café` shows)."""

    def __init__(self, pairs, dropped=()):
        self.pairs = pairs
        self.dropped = list(dropped)

    def items(self):
        return list(self.pairs)

    def keys(self):
        return [k for k, _ in self.pairs] + self.dropped

    def get(self, name, default=None):
        return next((v for k, v in self.pairs if k == name), default)

    def __contains__(self, name):
        return any(k == name for k, _ in self.pairs)


def test_environ_is_what_wsgi_servers_give_django():
    scope = Scope(
        [
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("content-length", "2"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("accept", "text/html"),
            ("accept", "application/json"),
            ("x_forwarded_proto", "https"),
        ]
    )
    environ = environ_from(scope, b"{}")
    assert environ["PATH_INFO"].encode("latin-1").decode() == "/getAllUserBuys/josé"
    assert environ["QUERY_STRING"] == "limit=5" and environ["REQUEST_METHOD"] == "POST"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert environ["REMOTE_ADDR"] == "::1"
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("application/json", "2")
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    # A header spelled with underscores must not pass for X-Forwarded-Proto.
    assert "HTTP_X_FORWARDED_PROTO" not in environ
    assert environ["wsgi.input"].read() == b"{}"


def test_a_header_value_granian_left_out_arrives_empty_for_the_application_to_refuse():
    scope = Scope([("accept", "*/*")], dropped=["idempotency-key", "x_other", "content-type"])
    environ = environ_from(scope, b"")
    assert environ["HTTP_IDEMPOTENCY_KEY"] == ""
    assert environ["HTTP_ACCEPT"] == "*/*"
    assert "HTTP_X_OTHER" not in environ and "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_IDEMPOTENCY_KEY" not in environ_from(Scope([("accept", "*/*")]), b"")


def test_a_content_length_that_is_not_a_number_is_never_read():
    app = DjangoRSGI(lambda environ, start: [], threads=1, body_timeout_s=1, max_body_bytes=10)
    assert app._declared("7") == 7
    assert app._declared("7, 7") == 7
    assert app._declared("seven") == 11


def test_serving_without_granians_init_hook_fails_loudly():
    app = DjangoRSGI(lambda environ, start: [], threads=1, body_timeout_s=1, max_body_bytes=10)
    with pytest.raises(RuntimeError, match="__rsgi_init__"):
        asyncio.run(app.__rsgi__(Scope([]), None))
