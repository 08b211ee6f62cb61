"""Slow clients for tests and the benchmark: connections to 127.0.0.1 that send half a
request header and then wait. The caller closes them (`close_all`)."""

from __future__ import annotations

import socket


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
