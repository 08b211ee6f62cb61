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
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from granian.rsgi import ProtocolClosed, ProtocolError

from purchases_project import per_process

logger = logging.getLogger("purchases_project.serve")

# Streamed responses (static files) go to the client in blocks of about this size, each
# taken from the response's iterator by a pool thread.
STREAM_BLOCK_BYTES = 256 * 1024
_SPECIAL_HEADERS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_BASE_ENVIRON: dict[str, Any] = {
    "SCRIPT_NAME": "",
    "wsgi.errors": sys.stderr,
    "wsgi.version": (1, 0),
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
}


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
    headers = scope.headers.items()
    for name, value in headers:
        if "_" in name:
            continue  # "X_Forwarded_Proto" must not pass for X-Forwarded-Proto (as Django's runserver)
        if special := _SPECIAL_HEADERS.get(name):
            environ.setdefault(special, value)  # repeated equal lengths: the server checked them
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    if len(headers) != len(names := scope.headers.keys()):
        # granian drops a value that is not visible ASCII, not its name: empty, as under WSGI
        for name in (n for n in names if "_" not in n and n not in _SPECIAL_HEADERS):
            environ.setdefault("HTTP_" + name.upper().replace("-", "_"), "")
    return environ


def _next_block(chunks: Iterator[bytes]) -> bytes:
    block = bytearray()
    for chunk in chunks:
        block += chunk
        if len(block) >= STREAM_BLOCK_BYTES:
            break
    return bytes(block)


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Threads:
    """`count` Python threads that run calls for the event loop: one queue put to hand a call
    over, one `call_soon_threadsafe` to hand its result back (an executor's futures and
    locks cost more per request)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int):
        self._loop = loop
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"web-{i}", daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        future = self._loop.create_future()
        self._calls.put((future, fn, args))
        return future

    def _work(self) -> None:
        back = self._loop.call_soon_threadsafe
        while (call := self._calls.get()) is not None:
            future, fn, args = call
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - raised again in the awaiting coroutine
                back(_resolve, future, None, exc)
            else:
                back(_resolve, future, result, None)

    def stop(self) -> None:
        """Lets the calls already handed over finish, then ends the threads."""
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            thread.join()


class BodyDeadlines:
    """Cancels body reads that outlast `timeout_s`. Overdue reads are looked for a few times
    per timeout (so a read ends at most a quarter of it late), which costs a request two
    dictionary operations instead of a timer of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float):
        self._loop = loop
        self.timeout_s = timeout_s
        self._period = min(1.0, timeout_s / 4)
        self._reading: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        loop.call_later(self._period, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        for task, deadline in list(self._reading.items()):
            if deadline <= now:
                del self._reading[task]
                self._expired.add(task)
                task.cancel()
        self._loop.call_later(self._period, self._check)

    async def run(self, read: Any) -> bytes:
        """`await read` within the deadline, else `TimeoutError`."""
        task = asyncio.current_task()
        assert task is not None
        self._reading[task] = self._loop.time() + self.timeout_s
        try:
            return await read
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            raise TimeoutError from None
        finally:
            self._reading.pop(task, None)


class DjangoRSGI:
    """An RSGI application that runs a WSGI application in a bounded thread pool."""

    def __init__(self, wsgi: Callable[..., Any], *, threads: int, body_timeout_s: float, max_body_bytes: int):
        self.wsgi = wsgi
        self.threads = threads
        self.body_timeout_s = body_timeout_s
        self.max_body_bytes = max_body_bytes
        self._pool: Threads | None = None
        self._deadlines: BodyDeadlines

    # -- granian's per-worker hooks -------------------------------------------------
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = Threads(loop, self.threads)
        self._deadlines = BodyDeadlines(loop, self.body_timeout_s)
        per_process.started()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pool is not None:
            self._pool.stop()
        per_process.stopping()

    # -- one request ------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if self._pool is None:
            raise RuntimeError("the server did not call __rsgi_init__: granian's RSGI hooks changed")
        length = scope.headers.get("content-length")
        chunked = "transfer-encoding" in scope.headers
        body = b""
        # No body, or one refused by its declared size (never read); else read it, in time.
        if chunked or (length not in (None, "0") and self._declared(length) <= self.max_body_bytes):
            try:
                body = await self._deadlines.run(self._read_chunked(proto) if chunked else proto())
            except TimeoutError:
                return self._too_slow(scope, proto)
            except (ProtocolClosed, ProtocolError):  # the client went away before its body
                return None
        status, headers, content, response = await self._pool.run(self._call, scope, body)
        if content is not None:
            proto.response_bytes(status, headers, content)
        else:
            await self._stream(self._pool, proto, status, headers, response)

    def _declared(self, length: str) -> int:
        """The Content-Length as the server framed it (it accepts a list of equal values)."""
        try:
            return int(length.partition(",")[0])
        except ValueError:
            return self.max_body_bytes + 1  # not read; the view refuses the request

    async def _read_chunked(self, proto: Any) -> bytes:
        limit = self.max_body_bytes
        body = bytearray()
        async for chunk in proto:
            body += chunk
            if len(body) > limit:
                break
        return bytes(body[: limit + 1])

    def _too_slow(self, scope: Any, proto: Any) -> None:
        from purchases_project import jsonutil, request_id

        rid = request_id.request_id_from(scope.headers.get("x-request-id"))
        logger.info("request body not whole within %s s: 408", self.body_timeout_s, extra={"request_id": rid})
        message = f"The request body did not arrive within {self.body_timeout_s:g} s"
        headers = [("content-type", "application/json"), ("connection", "close"), ("x-request-id", rid)]
        proto.response_bytes(408, headers, jsonutil.dumps({"error": message}))

    def _call(self, scope: Any, body: bytes) -> tuple[int, list, bytes | None, Any]:
        """Runs on a pool thread: the WSGI call, and the body when it is in memory."""
        started: list[Any] = []
        environ = environ_from(scope, body)

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

    @staticmethod
    async def _stream(pool: Threads, proto: Any, status: int, headers: list, response: Any) -> None:
        chunks = iter(response)
        try:
            transport = proto.response_stream(status, headers)
            while block := await pool.run(_next_block, chunks):
                await transport.send_bytes(block)
        except (ProtocolClosed, ProtocolError) as exc:  # the client went away mid-answer
            logger.debug("streamed response ended early: %s", exc)
        finally:
            if hasattr(response, "close"):
                await pool.run(response.close)


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
