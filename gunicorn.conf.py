"""gunicorn settings for both web roles (read from the directory gunicorn starts in).

The role chooses the default port. The master process serves the workers'
aggregated Prometheus metrics on METRICS_PORT (multiprocess mode), never on
the public port, and marks exited workers dead so their gauges go away.
"""

import math
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_PORTS = {"storefront": 8000, "ledger": 5001}

role = os.environ.get("SERVICE_ROLE", "")
if role not in DEFAULT_PORTS:
    raise SystemExit(
        f"SERVICE_ROLE must be one of {', '.join(DEFAULT_PORTS)} (got {role!r}); "
        "it says which service this process is."
    )


def _cpus() -> int:
    """CPUs this container may use: the cgroup quota where there is one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0))


host = os.environ.get("BIND_ADDRESS", "0.0.0.0")
bind = f"{host}:{os.environ.get('PORT', DEFAULT_PORTS[role])}"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, _cpus())))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
keepalive = 5
# gunicorn answers an over-long request line itself, in HTML; allow its maximum, which
# covers every URL the API documents (a 512-character cursor, percent-encoded).
limit_request_line = 8190
timeout = 30
# Below the pod's termination grace period, so in-flight requests finish.
graceful_timeout = 25
proc_name = f"purchases-{role}"

metrics_port = int(os.environ.get("METRICS_PORT", "9100"))
multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix=f"prometheus-{role}-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir


def on_starting(server):
    # Values left by an earlier run would be added to this one's.
    shutil.rmtree(multiproc_dir, ignore_errors=True)
    os.makedirs(multiproc_dir, exist_ok=True)


def when_ready(server):
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(metrics_port, addr=host, registry=registry)
    server.log.info("metrics on http://%s:%d/metrics", host, metrics_port)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    if role == "storefront":
        from storefront.producer import close_producer

        close_producer()


def post_worker_init(worker):
    if role == "storefront":
        # Connect now, so the first purchase does not wait for the broker's producer id.
        from storefront.producer import get_producer

        get_producer()


# gunicorn's own records in the same format as the application's (LOG_FORMAT). Only the
# error log: a logconfig would switch on the access log, a formatted line per request.
if os.environ.get("LOG_FORMAT", "json") == "json":
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)
            from pythonjsonlogger.json import JsonFormatter

            formatter = JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp=True,
            )
            for handler in self.error_log.handlers:
                handler.setFormatter(formatter)

    logger_class = JsonLogger
