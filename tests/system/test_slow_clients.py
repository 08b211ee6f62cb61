"""Slow clients must not take the public port down.

200 connections to the storefront send a partial request header and then wait (a slow or
hostile client, "slowloris"); in the second test one signed-in customer's connections send a
whole header and half a body. While they hang, health probes and purchases on fresh
connections must still be answered, each within a bound a Kubernetes probe would accept,
and a body that does not arrive within BODY_TIMEOUT_S is answered 408 or its connection closed.
Traffic goes to 127.0.0.1 only; every socket is closed and every process stopped by PID.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.slow_clients import close_all, open_slow_bodies, open_slow_clients, outcome, still_open
from devstack.stack import wait_until
from tests.support.http import request

SLOW_CLIENTS = 200
PROBES = 10
# A liveness probe's timeout is 1 s by default; leave room for a busy 2-core machine.
PROBE_BOUND_S = 2.0


def timed(method: str, url: str, **kwargs) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status = request(method, url, timeout=PROBE_BOUND_S, **kwargs).status_code
    except OSError:  # requests' timeouts and connection errors included
        status = None
    return status, time.monotonic() - started


@pytest.mark.timeout(120)
def test_health_and_purchases_answer_while_200_slow_clients_hang(make_stack):
    s = make_stack("slow-clients")
    s.start_broker()
    s.create_topics()
    s.start_web("storefront")
    base = s.storefront_url
    body = {"username": "slow", "userid": "slow-1", "price": 1}
    token = s.issuer.token("slow-1")
    assert timed("POST", f"{base}/buy", json=body, token=token)[0] == 201

    clients = open_slow_clients(s.ports.storefront, SLOW_CLIENTS)
    try:
        probes = [timed("GET", f"{base}/health") for _ in range(PROBES)]
        buys = [timed("POST", f"{base}/buy", json=body, token=token) for _ in range(3)]
        open_now = sum(1 for c in clients if still_open(c))
    finally:
        close_all(clients)

    print(json.dumps({"probes": probes, "buys": buys, "slow_still_open": open_now}))
    answered = [t for status, t in probes if status == 200]
    assert len(answered) == PROBES, f"{PROBES - len(answered)} of {PROBES} health probes failed: {probes}"
    assert max(answered) < PROBE_BOUND_S, probes
    assert [status for status, _ in buys] == [201, 201, 201], buys
    # The slow clients were really holding connections while the probes ran.
    assert open_now == SLOW_CLIENTS, f"only {open_now} slow connections were still open"

    # Once they are gone the server is as before.
    wait_until(lambda: timed("GET", f"{base}/health")[0] == 200, 10, "health after the slow clients left")
    assert s.procs["storefront"].alive()


SLOW_BODIES = 24
BODY_TIMEOUT_S = 3.0
# How late after BODY_TIMEOUT_S a slow body may still be answered on a busy machine.
BODY_MARGIN_S = 3.0


def _answered_408_or_closed(received: bytes) -> bool:
    if not received:
        return True  # closed without an answer
    head, _, body = received.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 408 ") and isinstance(json.loads(body).get("error"), str)


@pytest.mark.timeout(120)
def test_slow_bodies_from_one_customer_hold_no_thread_and_time_out(make_stack):
    s = make_stack("slow-bodies")
    s.start_broker()
    s.create_topics()
    # 2 workers x 8 threads: 24 slow bodies would hold every Python thread if threads read bodies.
    s.start_web("storefront", BODY_TIMEOUT_S=BODY_TIMEOUT_S, WEB_CONCURRENCY=2, WEB_THREADS=8)
    base = s.storefront_url
    other = {"username": "other", "userid": "other-1", "price": 2}
    other_token = s.issuer.token("other-1")
    assert timed("POST", f"{base}/buy", json=other, token=other_token)[0] == 201

    sent = time.monotonic()
    slow = open_slow_bodies(s.ports.storefront, SLOW_BODIES, s.issuer.token("slow-1"), "slow-1")
    try:
        with ThreadPoolExecutor(4) as pool:
            probes = list(pool.map(lambda _: timed("GET", f"{base}/health"), range(PROBES)))
            buys = list(
                pool.map(lambda _: timed("POST", f"{base}/buy", json=other, token=other_token), range(4))
            )
        answered_by = time.monotonic()
        deadline = sent + BODY_TIMEOUT_S + BODY_MARGIN_S
        outcomes = [outcome(c, deadline) for c in slow]
    finally:
        close_all(slow)

    closed_after = [None if at is None else round(at - sent, 2) for _, at in outcomes]
    print(json.dumps({"probes": probes, "buys": buys, "slow_closed_after_s": closed_after}))
    assert [status for status, _ in probes] == [200] * PROBES, probes
    assert max(t for _, t in probes) < PROBE_BOUND_S, probes
    assert [status for status, _ in buys] == [201] * 4, buys
    # Everything above was answered while every slow body was still being waited for.
    first_closed = min((at for _, at in outcomes if at is not None), default=None)
    assert first_closed is None or answered_by < first_closed, (answered_by - sent, closed_after)
    # Each slow body: 408 JSON or a close, within BODY_TIMEOUT_S (plus a margin), not before it.
    assert all(at is not None for _, at in outcomes), f"still open after the deadline: {closed_after}"
    assert min(closed_after) >= BODY_TIMEOUT_S - 0.1, closed_after  # type: ignore[type-var]
    bad = [received[:200] for received, _ in outcomes if not _answered_408_or_closed(received)]
    assert not bad, bad
    # No slow purchase was recorded, and the storefront serves on as before.
    assert timed("GET", f"{base}/health")[0] == 200
    assert s.procs["storefront"].alive()


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(request)
        except OSError:  # the server answered and closed before reading it all
            pass
        return s.recv(65536)


@pytest.mark.timeout(120)
def test_the_servers_own_400_414_431_carry_a_status_and_no_body(make_stack):
    """What the README says: hyper answers these before any Python code runs, and granian has
    no hook for their bodies (if one appears, this fails and the answers can become JSON)."""
    s = make_stack("server-refusals")
    s.start_web("storefront")
    port = s.ports.storefront
    answers = {
        400: _raw(port, b"NOT HTTP AT ALL\r\n\r\n"),
        414: _raw(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        # Beyond the server's read buffer (about 400 KiB) whichever way the bytes arrive.
        431: _raw(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 2_000_000 + b"\r\n\r\n"),
    }
    for status, answer in answers.items():
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
        assert b"content-length: 0" in head.lower() and body == b"", answer[:200]
