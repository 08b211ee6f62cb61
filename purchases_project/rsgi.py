"""The web workers' application: Django's WSGI handler behind granian's RSGI interface
(granian's published protocol, docs/spec/RSGI.md; docs/decisions/0014).

A request's body is read on the worker's event loop, never by a Python thread: it must
arrive whole within `BODY_TIMEOUT_S` of the request reaching the worker, else the answer is
408 `{"error": ...}` and the connection closes. At most `PURCHASE_MAX_BODY_BYTES` + 1 bytes
are read (a body declared larger is not read at all): the view answers 413 in its own order
of checks (the token first). Only then does one of the worker's `WEB_THREADS` Python threads
run Django with the buffered body, so slow senders hold no thread that serves others.

Lifecycle (granian's per-worker hooks): `__rsgi_init__` starts the thread pool and runs the
apps' per-process start steps (`purchases_project.per_process`); `__rsgi_del__` runs, once
the worker has answered the requests in flight, the apps' stop steps (the producer flushes).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from granian.rsgi import ProtocolClosed, ProtocolError

from purchases_project import per_process

logger = logging.getLogger("purchases_project.serve")

# Streamed responses (static files) go to the client in blocks of about this size, each
# taken from the response's iterator by a pool thread.
STREAM_BLOCK_BYTES = 256 * 1024
_SPECIAL_HEADERS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_BASE_ENVIRON = {
    "SCRIPT_NAME": "",
    "wsgi.errors": sys.stderr,
    "wsgi.version": (1, 0),
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
}


class BodyTooSlow(Exception):
    """The request body did not arrive whole in time."""


def environ_from(scope: Any, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) for an RSGI request scope and its buffered body."""
    server_host, _, server_port = scope.server.rpartition(":")
    environ = _BASE_ENVIRON | {
        "REQUEST_METHOD": scope.method,
        # WSGI carries the decoded path's UTF-8 bytes as latin-1 text; Django decodes it back.
        "PATH_INFO": scope.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_host.strip("[]"),
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": scope.client.rpartition(":")[0].strip("[]"),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body),
    }
    for name, value in scope.headers.items():
        if "_" in name:
            continue  # "X_Forwarded_Proto" must not pass for X-Forwarded-Proto (as Django's runserver)
        key = _SPECIAL_HEADERS.get(name) or "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


def _next_block(chunks: Iterator[bytes]) -> bytes:
    block = bytearray()
    for chunk in chunks:
        block += chunk
        if len(block) >= STREAM_BLOCK_BYTES:
            break
    return bytes(block)


class DjangoRSGI:
    """An RSGI application that runs a WSGI application in a bounded thread pool."""

    def __init__(self, wsgi: Callable[..., Any], *, threads: int, body_timeout_s: float, max_body_bytes: int):
        self.wsgi = wsgi
        self.threads = threads
        self.body_timeout_s = body_timeout_s
        self.max_body_bytes = max_body_bytes
        self._pool: ThreadPoolExecutor | None = None

    # -- granian's per-worker hooks -------------------------------------------------
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="web")
        per_process.started()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        per_process.stopping()

    # -- one request ------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if self._pool is None:
            raise RuntimeError("the server did not call __rsgi_init__: granian's RSGI hooks changed")
        try:
            body = await self._read_body(scope.headers, proto)
        except BodyTooSlow:
            return self._too_slow(scope, proto)
        loop = asyncio.get_running_loop()
        status, headers, content, response = await loop.run_in_executor(
            self._pool, self._call, environ_from(scope, body)
        )
        if content is not None:
            proto.response_bytes(status, headers, content)
        else:
            await self._stream(loop, proto, status, headers, response)

    async def _read_body(self, headers: Any, proto: Any) -> bytes:
        length = headers.get("content-length")
        chunked = "transfer-encoding" in headers
        if not chunked and length in (None, "0"):
            return b""
        if not chunked and int(length) > self.max_body_bytes:
            return b""  # refused by its declared size; never read
        limit = self.max_body_bytes
        try:
            async with asyncio.timeout(self.body_timeout_s):
                if not chunked:
                    return await proto()
                body = bytearray()
                async for chunk in proto:
                    body += chunk
                    if len(body) > limit:
                        break
                return bytes(body[: limit + 1])
        except TimeoutError:
            raise BodyTooSlow from None

    def _too_slow(self, scope: Any, proto: Any) -> None:
        from purchases_project import jsonutil, request_id

        rid = request_id.request_id_from(scope.headers.get("x-request-id"))
        logger.info("request body not whole within %s s: 408", self.body_timeout_s, extra={"request_id": rid})
        message = f"The request body did not arrive within {self.body_timeout_s:g} s"
        proto.response_bytes(
            408,
            [
                ("content-type", "application/json"),
                ("connection", "close"),
                ("x-request-id", rid),
            ],
            jsonutil.dumps({"error": message}),
        )

    def _call(self, environ: dict[str, Any]) -> tuple[int, list, bytes | None, Any]:
        """Runs on a pool thread: the WSGI call, and the body when it is in memory."""
        started: list[Any] = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> None:
            started[:] = (int(status[:3]), headers)

        response = self.wsgi(environ, start_response)
        if getattr(response, "streaming", True):
            return started[0], started[1], None, response
        try:
            # Django's HttpResponse: its content in one piece, then Django's request_finished.
            return started[0], started[1], response.content, None
        finally:
            response.close()

    async def _stream(
        self, loop: asyncio.AbstractEventLoop, proto: Any, status: int, headers: list, response: Any
    ):
        chunks = iter(response)
        try:
            transport = proto.response_stream(status, headers)
            while block := await loop.run_in_executor(self._pool, _next_block, chunks):
                await transport.send_bytes(block)
        except (ProtocolClosed, ProtocolError) as exc:  # the client went away mid-answer
            logger.debug("streamed response ended early: %s", exc)
        finally:
            if hasattr(response, "close"):
                await loop.run_in_executor(self._pool, response.close)


def _worker_pid_for_metrics() -> None:
    """Multiprocess metric values ask for the process id on every update, to notice a fork;
    ask the kernel once per worker instead (a worker never serves from a forked child, and
    a fork updates the value anyway). Must run before any metric exists in the worker."""
    from prometheus_client import values

    pid = [os.getpid()]
    os.register_at_fork(after_in_child=lambda: pid.__setitem__(0, os.getpid()))
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid[0])


def application() -> DjangoRSGI:
    """granian's target factory (`factory=True`), called once in each worker process."""
    _worker_pid_for_metrics()
    from django.conf import settings

    from purchases_project.wsgi import application as wsgi

    return DjangoRSGI(
        wsgi,
        threads=settings.WEB_THREADS,
        body_timeout_s=settings.BODY_TIMEOUT_S,
        max_body_bytes=settings.PURCHASE_MAX_BODY_BYTES,
    )
