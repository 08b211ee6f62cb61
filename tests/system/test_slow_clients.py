"""Slow clients must not take the public port down.

200 connections to the storefront send a partial request header and then wait (a slow or
hostile client, "slowloris"). While they hang, health probes and purchases on fresh
connections must still be answered, each within a bound a Kubernetes probe would accept.
Traffic goes to 127.0.0.1 only; every socket is closed and every process stopped by PID.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from devstack.stack import wait_until
from tests.observability.helpers import call

SLOW_CLIENTS = 200
PROBES = 10
# A liveness probe's timeout is 1 s by default; leave room for a busy 2-core machine.
PROBE_BOUND_S = 2.0


def open_slow_clients(port: int, count: int) -> list[socket.socket]:
    """Connections that have sent half a request header and wait for the rest."""
    clients = []
    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET /health?slow={i} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
            clients.append(s)
    except BaseException:
        close_all(clients)
        raise
    return clients


def close_all(clients: list[socket.socket]) -> None:
    for s in clients:
        try:
            s.close()
        except OSError:
            pass


def timed(method: str, url: str, **kwargs) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status, _, _ = call(method, url, timeout=PROBE_BOUND_S, **kwargs)
    except OSError:
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
    auth = {"Authorization": f"Bearer {s.issuer.token('slow-1')}"}
    assert timed("POST", f"{base}/buy", body=body, headers=auth)[0] == 201

    clients = open_slow_clients(s.ports.storefront, SLOW_CLIENTS)
    try:
        probes = [timed("GET", f"{base}/health") for _ in range(PROBES)]
        buys = [timed("POST", f"{base}/buy", body=body, headers=auth) for _ in range(3)]
        still_open = sum(1 for c in clients if _open(c))
    finally:
        close_all(clients)

    print(json.dumps({"probes": probes, "buys": buys, "slow_still_open": still_open}))
    answered = [t for status, t in probes if status == 200]
    assert len(answered) == PROBES, f"{PROBES - len(answered)} of {PROBES} health probes failed: {probes}"
    assert max(answered) < PROBE_BOUND_S, probes
    assert [status for status, _ in buys] == [201, 201, 201], buys
    # The slow clients were really holding connections while the probes ran.
    assert still_open == SLOW_CLIENTS, f"only {still_open} slow connections were still open"

    # Once they are gone the server is as before.
    wait_until(lambda: timed("GET", f"{base}/health")[0] == 200, 10, "health after the slow clients left")
    assert s.procs["storefront"].alive()


def _open(sock: socket.socket) -> bool:
    """True while the server has not closed the connection (nothing to read, no EOF)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
