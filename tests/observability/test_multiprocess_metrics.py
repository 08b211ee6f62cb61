"""Multiprocess Prometheus metrics of a storefront with three worker processes.

The server's parent process (`purchases_project.serve`) serves the workers' aggregated
counters on METRICS_PORT. Scraped
while traffic runs, the request counter must add up exactly to the requests sent,
never go down between two scrapes, and survive a worker killed with SIGKILL (the
multiprocess collector keeps a dead worker's counter file).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from devstack.stack import wait_until

from .helpers import REQUESTS_BY_METHOD, Connection, child_pids, sample_value, scrape

WORKERS = 3


def get_count(port: int) -> float:
    return sample_value(scrape(port), REQUESTS_BY_METHOD, method="GET")


class Scraper:
    """Scrapes the metrics port in a loop, keeping every value of the GET counter in order."""

    def __init__(self, port: int, interval: float = 0.02):
        self.port = port
        self.interval = interval
        self.values: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.values.append(get_count(self.port))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def wait_for_more(self, scrapes: int = 3) -> None:
        """Until `scrapes` more scrapes have finished (the values after the last answer)."""
        target = len(self.values) + scrapes
        wait_until(lambda: len(self.values) >= target or self.errors, 20, f"{scrapes} more scrapes")


def assert_never_decreases(values: list[float]) -> None:
    drops = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(values)) if b < a]
    assert not drops, f"the counter went down between consecutive scrapes (index, before, after): {drops[:5]}"


def per_worker_get_counts(multiproc_dir: Path) -> dict[int, float]:
    """GET requests counted in each process's own counter file (counter_<pid>.db)."""
    counts = {}
    for path in sorted(multiproc_dir.glob("counter_*.db")):
        pid = int(path.stem.split("_")[1])
        value = 0.0
        for metric in MultiProcessCollector.merge([str(path)]):
            for s in metric.samples:
                if s.name == REQUESTS_BY_METHOD and s.labels.get("method") == "GET":
                    value += s.value
        counts[pid] = value
    return counts


def start_storefront(make_stack, name: str, tmp_path: Path):
    multiproc_dir = tmp_path / f"{name}-prometheus"
    s = make_stack(name)
    s.start_infra()
    master = s.start_web(
        "storefront", WEB_CONCURRENCY=str(WORKERS), PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir)
    )
    workers = wait_until(
        lambda: (pids := child_pids(master.pid)) and len(pids) == WORKERS and pids, 20, f"{WORKERS} workers"
    )
    return s, master, workers, multiproc_dir


def drive(port: int, count: int, keepalive: bool, results: dict, lock: threading.Lock) -> None:
    """Send `count` GET /health; a keep-alive connection, or a new connection per request."""
    conn = Connection(port, timeout=10)
    headers = {} if keepalive else {"Connection": "close"}
    ok = failed = 0
    try:
        for _ in range(count):
            try:
                status, _ = conn.request("GET", "/health", headers=headers)
                ok += status == 200
                failed += status != 200
            except Exception:  # noqa: BLE001 - a dropped connection counts as a failed request
                failed += 1
    finally:
        conn.close()
        with lock:
            results["ok"] += ok
            results["failed"] += failed


@pytest.mark.timeout(90)
def test_request_counter_adds_up_exactly_over_three_workers(make_stack, tmp_path):
    s, _, workers, multiproc_dir = start_storefront(make_stack, "mp-exact", tmp_path)
    port, metrics_port = s.ports.storefront, s.ports.storefront_metrics
    # Start-up's own readiness polls of /health are counted too: measure from here.
    before = get_count(metrics_port)
    assert before >= 1, "the readiness checks of start_web should already be counted"

    n_threads, per_thread = 6, 100
    n = n_threads * per_thread
    results, lock = {"ok": 0, "failed": 0}, threading.Lock()
    threads = [
        threading.Thread(target=drive, args=(port, per_thread, i % 2 == 0, results, lock))
        for i in range(n_threads)
    ]
    with Scraper(metrics_port) as scraper:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        during = len(scraper.values)
        scraper.wait_for_more()
    after = [get_count(metrics_port) for _ in range(3)]

    print(f"before={before} after={after} scrapes during={during}/{len(scraper.values)} results={results}")
    assert results == {"ok": n, "failed": 0}, results
    assert not scraper.errors, (len(scraper.errors), scraper.errors[:3])
    assert during >= 3, f"only {during} scrapes while the traffic ran"
    values = [before, *scraper.values, *after]
    assert_never_decreases(values)
    assert after[-1] - before == n, f"counter went {before} -> {after[-1]}, expected a delta of exactly {n}"
    assert scraper.values[-1] == after[-1]

    # The sum really spans workers: several workers' own files hold part of the count.
    counts = per_worker_get_counts(multiproc_dir)
    served = {pid: c for pid, c in counts.items() if pid in workers and c > 0}
    assert len(served) >= 2, f"requests were counted by one worker only: {counts} (workers {workers})"
    assert sum(counts.values()) == after[-1], counts


@pytest.mark.timeout(180)
def test_counter_survives_a_worker_killed_with_sigkill(make_stack, tmp_path):
    s, master, workers, multiproc_dir = start_storefront(make_stack, "mp-kill", tmp_path)
    port, metrics_port = s.ports.storefront, s.ports.storefront_metrics
    before = get_count(metrics_port)

    stop = threading.Event()
    results, lock = {"ok": 0, "failed": 0}, threading.Lock()

    def loop(keepalive: bool) -> None:
        while not stop.is_set():
            drive(port, 10, keepalive, results, lock)

    threads = [threading.Thread(target=loop, args=(i % 2 == 0,), daemon=True) for i in range(6)]
    with Scraper(metrics_port) as scraper:
        for t in threads:
            t.start()

        # Kill a worker that has already counted requests, mid-traffic.
        def busy_worker():
            counts = per_worker_get_counts(multiproc_dir)
            return next((pid for pid, c in counts.items() if pid in workers and c >= 100), None)

        # Generous: on a machine busy with other suites a worker may serve its first 100 slowly.
        victim = wait_until(
            busy_worker,
            60,
            "a worker that has served requests",
        )
        counted_by_victim = per_worker_get_counts(multiproc_dir)[victim]
        killed_at = len(scraper.values)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_until(
            lambda: (pids := child_pids(master.pid)) and len(pids) == WORKERS and victim not in pids and pids,
            20,
            "the server replacing the killed worker",
        )
        # Traffic keeps running until the new worker set has served some of it.
        wait_until(
            lambda: any(
                per_worker_get_counts(multiproc_dir).get(pid, 0) >= 20
                for pid in replaced
                if pid not in workers
            ),
            30,
            "a replacement worker serving requests",
        )
        stop.set()
        for t in threads:
            t.join(30)
        scraper.wait_for_more()
    assert not any(t.is_alive() for t in threads), "traffic threads did not finish"
    final = get_count(metrics_port)

    print(
        f"before={before} final={final} results={results} victim={victim} (had {counted_by_victim}) "
        f"workers {workers} -> {replaced}; scrapes {len(scraper.values)} ({killed_at} before the kill)"
    )
    assert master.alive(), "the server's parent process died"
    assert not scraper.errors, (len(scraper.errors), scraper.errors[:3])
    assert len(scraper.values) - killed_at >= 3, "too few scrapes after the kill"
    values = [before, *scraper.values, final]
    assert_never_decreases(values)
    delta = final - before
    assert results["ok"] > 0
    assert results["ok"] <= delta <= results["ok"] + results["failed"], (
        f"counter delta {delta}, answered 200: {results['ok']}, failed: {results['failed']}"
    )
    # The dead worker's counts stay in the total.
    counts = per_worker_get_counts(multiproc_dir)
    assert counts.get(victim, 0) >= counted_by_victim, f"the killed worker's counts are gone: {counts}"
    new_workers = sorted(set(replaced) - set(workers))
    assert new_workers, (workers, replaced)

    # Requests after the replacement are still counted exactly.
    settled = get_count(metrics_port)
    extra, lock2 = {"ok": 0, "failed": 0}, threading.Lock()
    drive(port, 30, False, extra, lock2)
    assert extra == {"ok": 30, "failed": 0}, extra
    assert get_count(metrics_port) - settled == 30
