"""HTTP to the services under test, over `requests`, to 127.0.0.1 only.

An HTTP error status is an answer, not an exception: every call returns the
`requests.Response` (status_code, content, headers, json()). A body given as `json`
is sent as JSON; a raw `data` body goes as it is, labelled application/json unless
the headers say otherwise. `token` adds an `Authorization: Bearer` header.
Environment proxies are ignored, so nothing leaves the machine.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import requests

LOCAL_HOST = "127.0.0.1"
TIMEOUT_S = 10.0
_NO_BODY = object()


def local_url(url: str) -> str:
    """`url` itself, or an error when it points anywhere but 127.0.0.1."""
    if urlsplit(url).hostname != LOCAL_HOST:
        raise ValueError(f"tests send requests to {LOCAL_HOST} only, not to {url!r}")
    return url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Client:
    """A keep-alive session to the services on 127.0.0.1; `base_url` prefixes relative paths.

    One per thread (a `requests.Session` is not shared between threads)."""

    def __init__(self, base_url: str = "", *, timeout: float = TIMEOUT_S):
        self.base_url = local_url(base_url) if base_url else ""
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment: 127.0.0.1 directly

    def request(
        self,
        method: str,
        url: str,
        *,
        json=_NO_BODY,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        headers = {**(bearer(token) if token else {}), **(headers or {})}
        if data is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return self.session.request(
            method,
            local_url(urljoin(self.base_url, url) if self.base_url else url),
            json=None if json is _NO_BODY else json,
            data=data,
            headers=headers,
            timeout=timeout or self.timeout,
            allow_redirects=False,
        )

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def request(method: str, url: str, **kwargs) -> requests.Response:
    """One request on a connection of its own (see `Client.request` for the arguments)."""
    with Client() as client:
        return client.request(method, url, **kwargs)


def get(url: str, **kwargs) -> requests.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs) -> requests.Response:
    return request("POST", url, **kwargs)
