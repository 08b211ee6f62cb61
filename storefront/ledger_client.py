"""The storefront's client for the ledger: the only place that calls it.

Lifecycle: one pooled `requests.Session` per process, created on first use
(after the web server's fork) and re-created if the PID changes. Connect and read
timeouts come from settings; a GET whose connection fails is retried, a read
that times out is not (the ledger is merely slow, and asking again adds load).
"""

import os
import threading
import time
from urllib.parse import quote

import requests
from django.conf import settings
from prometheus_client import Counter, Histogram
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from purchases_project import jsonutil, request_id

LEDGER_SECONDS = Histogram(
    "ledger_request_seconds",
    "Time the storefront spent on one call to the ledger",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LEDGER_ERRORS = Counter(
    "ledger_request_errors_total", "Calls to the ledger that failed, by reason", ["reason"]
)
for _reason in ("unreachable", "timeout", "bad_response"):
    LEDGER_ERRORS.labels(_reason)


class LedgerUnavailable(Exception):
    """The ledger could not be reached, or did not answer with JSON."""


class LedgerTimeout(Exception):
    """The ledger accepted the call but did not answer within the read timeout."""


_lock = threading.Lock()
_session: requests.Session | None = None
_pid: int | None = None


def _get_session() -> requests.Session:
    global _session, _pid
    if _session is None or _pid != os.getpid():
        with _lock:
            if _session is None or _pid != os.getpid():
                session = requests.Session()
                retry = Retry(
                    total=2,
                    connect=2,
                    read=False,
                    status=0,
                    other=0,
                    allowed_methods={"GET"},
                    backoff_factor=0.05,
                )
                session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
                session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
                _session, _pid = session, os.getpid()
    return _session


def user_purchases_fetch(*, userid: str, params: dict[str, str], token: str) -> tuple[int, dict]:
    """Ask the ledger for one page of a user's purchases: (status, body), money as Decimal."""
    return ledger_get(path=f"/purchases/{quote(userid, safe='')}", params=params, token=token)


def user_spending_fetch(*, userid: str, params: dict[str, str], token: str) -> tuple[int, dict]:
    """Ask the ledger for a user's spending per month: (status, body), money as Decimal."""
    return ledger_get(path=f"/spending/{quote(userid, safe='')}", params=params, token=token)


def ledger_get(*, path: str, params: dict[str, str], token: str) -> tuple[int, dict]:
    """GET one of the ledger's read endpoints with the customer's token: (status, JSON body)."""
    url = f"{settings.LEDGER_API_URL.rstrip('/')}{path}"
    # The ledger verifies the customer's token again (defence in depth).
    headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
    if rid := request_id.get():
        headers[request_id.HEADER] = rid
    started = time.perf_counter()
    try:
        response = _get_session().get(
            url,
            params=params,
            headers=headers,
            timeout=(settings.LEDGER_CONNECT_TIMEOUT_S, settings.LEDGER_READ_TIMEOUT_S),
        )
    except requests.Timeout as exc:
        if isinstance(exc, requests.ConnectTimeout):
            LEDGER_ERRORS.labels("unreachable").inc()
            raise LedgerUnavailable("ledger did not accept the connection") from exc
        LEDGER_ERRORS.labels("timeout").inc()
        raise LedgerTimeout("ledger did not answer in time") from exc
    except requests.RequestException as exc:
        LEDGER_ERRORS.labels("unreachable").inc()
        raise LedgerUnavailable("ledger is unreachable") from exc
    finally:
        LEDGER_SECONDS.observe(time.perf_counter() - started)
    try:
        body = jsonutil.loads(response.content)
    except ValueError as exc:
        LEDGER_ERRORS.labels("bad_response").inc()
        raise LedgerUnavailable(f"ledger answered {response.status_code} without JSON") from exc
    if not isinstance(body, dict):
        LEDGER_ERRORS.labels("bad_response").inc()
        raise LedgerUnavailable("ledger answered with something other than a JSON object")
    return response.status_code, body
