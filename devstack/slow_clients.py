"""Slow clients for tests and the benchmark: connections to 127.0.0.1 that send half a
request header, or a whole header and half a body, and then wait. The caller closes them
(`close_all`)."""

from __future__ import annotations

import json
import socket
import time


def open_slow_clients(port: int, count: int) -> list[socket.socket]:
    """`count` connections that have sent part of a request header and wait for the rest."""
    clients: list[socket.socket] = []
    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET /health?slow={i} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
            clients.append(s)
    except BaseException:
        close_all(clients)
        raise
    return clients


def open_slow_bodies(port: int, count: int, token: str, userid: str) -> list[socket.socket]:
    """`count` signed-in `POST /buy` requests that have sent their header and half their body."""
    body = json.dumps({"username": "slow", "userid": userid, "price": 1}).encode()
    head = (
        f"POST /buy HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(head + body[: len(body) // 2])
            clients.append(s)
    except BaseException:
        close_all(clients)
        raise
    return clients


def outcome(sock: socket.socket, deadline: float) -> tuple[bytes, float | None]:
    """What the server sent until it closed the connection, and when it closed it (monotonic
    time; None if it was still open at `deadline`)."""
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:  # reset: closed as well
            return received, time.monotonic()
        if not data:
            return received, time.monotonic()
        received += data
    return received, None


def close_all(clients: list[socket.socket]) -> None:
    for s in clients:
        try:
            s.close()
        except OSError:
            pass


def still_open(sock: socket.socket) -> bool:
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
