"""What the observability tests share beyond tests/support: a raw keep-alive connection
and the workers of a process (traffic to 127.0.0.1 only)."""

from __future__ import annotations

import http.client
import subprocess

from tests.support.metrics import sample_value, scrape

__all__ = ["REQUESTS_BY_METHOD", "Connection", "child_pids", "sample_value", "scrape"]

REQUESTS_BY_METHOD = "django_http_requests_total_by_method_total"


class Connection:
    """A keep-alive HTTP/1.1 connection to 127.0.0.1 that reconnects after a failure."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, body) or raises OSError/HTTPException; the connection is dropped on failure."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=body, headers=headers or {})
            response = self._conn.getresponse()
            content = response.read()
            if response.will_close:
                self.close()
            return response.status, content
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True, timeout=10)
    return sorted(int(p) for p in out.stdout.split())
