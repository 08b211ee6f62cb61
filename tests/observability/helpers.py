"""Small HTTP and metrics helpers for the observability tests (traffic to 127.0.0.1 only)."""

from __future__ import annotations

import http.client
import json
import subprocess
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

REQUESTS_BY_METHOD = "django_http_requests_total_by_method_total"


def call(method, url, body=None, headers=None, timeout=10):
    """One request: (status, body bytes, headers with case-insensitive names); HTTP errors are
    answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


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


def scrape(port: int, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
        return response.read().decode()


def samples(text: str, name: str) -> list[tuple[dict, float]]:
    """Every sample called `name` in an exposition text, as (labels, value)."""
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def sample_value(text: str, name: str, **labels) -> float:
    """The one sample `name{labels}`; 0.0 when the series is not there yet (a counter not yet hit)."""
    found = [v for got, v in samples(text, name) if all(got.get(k) == w for k, w in labels.items())]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0] if found else 0.0


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True, timeout=10)
    return sorted(int(p) for p in out.stdout.split())
