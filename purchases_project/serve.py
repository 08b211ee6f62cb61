"""`python -m purchases_project.serve`: the web roles' start command.

Runs granian (docs/decisions/0014) for `SERVICE_ROLE` (storefront or ledger) with
the settings in `purchases_project/settings.py`, through its public interfaces only (its
`Granian` server, the RSGI protocol and hooks): the port by role, `WEB_CONCURRENCY` worker
processes, each running `purchases_project.rsgi` (request headers and bodies are read by
granian's I/O threads and the worker's event loop, so slow clients hold no Python thread;
Django runs in `WEB_THREADS` threads per worker), graceful shutdown on SIGTERM (in-flight
requests finish, then each worker runs the apps' stop steps: the producer flushes).

This parent process serves the workers' aggregated Prometheus metrics on
`METRICS_PORT` (multiprocess mode), never on the public port, and marks exited
workers dead so their live gauges go away; granian replaces a worker that dies.
It refuses to start, before any worker, without a known role, a secret key, the
token settings (`AUTH_ISSUER`, `AUTH_JWKS_URL`) or, for the storefront,
`IDEMPOTENCY_SECRET`; wsgi.py checks them again for any other server.
"""

from __future__ import annotations

import functools
import glob
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "purchases_project.settings")

logger = logging.getLogger("purchases_project.serve")

_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def _cpus() -> int:
    """CPUs this container may use: the cgroup quota where there is one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0))


def _check_role(settings) -> None:
    if settings.SERVICE_ROLE not in settings.SERVICE_ROLES:
        raise SystemExit(
            f"SERVICE_ROLE must be one of {', '.join(settings.SERVICE_ROLES)} "
            f"(got {settings.SERVICE_ROLE!r}); it says which service this process is."
        )


def _check_token_settings() -> None:
    """Stop with a one-line message when tokens cannot be verified (or the storefront's
    purchase ids derived)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from purchases_project.events import check_idempotency_secret
    from purchases_project.identity import check_settings

    try:
        check_settings()
        if settings.SERVICE_ROLE == "storefront":
            check_idempotency_secret()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"cannot start: {exc}") from None


def _multiproc_dir(settings) -> str:
    """A clean folder for the workers' metrics files, named in the environment they inherit
    (the client library reads it when a worker imports it)."""
    role = settings.SERVICE_ROLE
    path = settings.PROMETHEUS_MULTIPROC_DIR or tempfile.mkdtemp(prefix=f"prometheus-{role}-")
    # Values left by an earlier run would be added to this one's.
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


class SizedFilesCollector:
    """prometheus_client's multiprocess merge over the files their workers have sized.

    A worker creates its file, then sizes it; a scrape in between reads 0 bytes and the
    library's collector raises `struct.error` for the whole registry (a 500), and a worker
    killed in that moment leaves the empty file for good (client_python issue 1199, open in
    0.26.0; a test fails once a release fixes it). An empty file holds nothing yet: it is
    left out, and the rest goes through the library's public `merge`
    (`MultiProcessCollector.merge`, passed in: see `_serve_metrics`)."""

    def __init__(self, path: str, merge: Callable[..., Iterable[Any]]):
        self.path, self.merge = path, merge

    def collect(self) -> Iterable[Any]:
        files = [f for f in glob.glob(os.path.join(self.path, "*.db")) if _sized(f)]
        return self.merge(files, accumulate=True)


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a dead worker's live gauges, removed since the listing
        return False


def _serve_metrics(settings, path: str) -> None:
    # What the metrics threads run is imported here, on the main thread, before they start:
    # granian forks its workers meanwhile, and a module a thread is importing at that moment
    # stays locked in the worker, which then hangs at its first import of it, for good.
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    registry.register(SizedFilesCollector(path, merge=multiprocess.MultiProcessCollector.merge))
    start_http_server(settings.METRICS_PORT, addr=settings.WEB_BIND_ADDRESS, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", settings.WEB_BIND_ADDRESS, settings.METRICS_PORT)
    reaper = threading.Thread(
        target=_mark_dead_workers,
        args=(path, multiprocess.mark_process_dead),
        name="metrics-reaper",
        daemon=True,
    )
    reaper.start()


def _mark_dead_workers(path: str, mark_dead: Callable[[int, str], None], interval: float = 1.0) -> None:
    """Drops the live gauges of workers that exited (their counters stay in the total)."""
    marked: set[int] = set()
    while True:
        time.sleep(interval)
        pids = {int(m.group(1)) for name in os.listdir(path) if (m := _PID_IN_NAME.search(name))}
        for pid in pids - marked:
            if not _alive(pid):
                mark_dead(pid, path)
                marked.add(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_config(settings) -> dict:
    """granian's records and this module's in the application's format (LOG_FORMAT); no access log."""
    handler = dict(settings.LOGGING["handlers"]["console"], stream="ext://sys.stdout")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": settings.LOGGING["filters"],
        "formatters": settings.LOGGING["formatters"],
        "handlers": {"console": handler},
        "loggers": {
            "_granian": {"handlers": ["console"], "propagate": False},
            logger.name: {"handlers": ["console"], "propagate": False, "level": settings.LOG_LEVEL},
        },
    }


def main(argv: list[str] | None = None) -> None:
    from django.conf import settings

    _check_role(settings)
    if not settings.SECRET_KEY:
        raise SystemExit("DJANGO_SECRET_KEY is required unless DJANGO_DEBUG is on")
    _check_token_settings()
    path = _multiproc_dir(settings)

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    server = Granian(
        "purchases_project.rsgi:application",
        factory=True,
        address=settings.WEB_BIND_ADDRESS,
        port=settings.WEB_PORT,
        interface=Interfaces.RSGI,
        loop=Loops.uvloop,
        workers=settings.WEB_CONCURRENCY or max(2, _cpus()),
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=settings.WEB_HEADER_READ_TIMEOUT_S * 1000),
        websockets=False,
        log_level=LogLevels(settings.LOG_LEVEL.lower()),
        log_dictconfig=_log_config(settings),
        respawn_failed_workers=True,
        workers_kill_timeout=settings.WEB_GRACEFUL_TIMEOUT_S,
    )
    server.on_startup(functools.partial(_serve_metrics, settings, path))
    server.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
