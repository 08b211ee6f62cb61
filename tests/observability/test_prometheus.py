"""The prometheus-adapter's queries, evaluated by a real Prometheus scraping the shared stack.

Debian's /usr/bin/prometheus scrapes the shared stack's three metrics ports every
second, with the target labels the documented kubernetes-pods scrape job adds
(namespace, pod, app). A paced, known request rate goes to the storefront; then
`promtool query instant` evaluates the PromQL prometheus-adapter would send, rendered
from the committed values (tests/monitoring/adapter.py).

About the expected rate: the adapter's rule is `rate(...[1m])`, an average over one
minute. This test drives its rate for DRIVE_SECONDS (< 60, to keep the folder fast),
inside a minute in which the storefront saw nothing else, so the real one-minute
request rate is requests_sent / 60, and that is what the adapter's value must match
(±25 %). Driven rate and window are both in the assertion message.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest

from devstack.stack import free_port, http_ok, wait_until
from tests.monitoring.adapter import render_adapter_query
from tests.support import http
from tests.support.load import Load
from tests.support.metrics import samples, scrape, total

PROMETHEUS = "/usr/bin/prometheus"
NAMESPACE = "purchase-system"
PODS = {"storefront": "storefront-obs-0", "ledger": "ledger-obs-0", "consumer": "purchase-consumer-obs-0"}
RATE = 20.0  # requests per second, well above the shared stack's idle noise (zero)
DRIVE_SECONDS = 22.0
WINDOW_SECONDS = 60.0  # the [1m] of the adapter's rule
SCRAPE_INTERVAL_S = 1


def prometheus_binary() -> str:
    path = PROMETHEUS if os.access(PROMETHEUS, os.X_OK) else shutil.which("prometheus")
    if not path:
        pytest.fail(
            f"{PROMETHEUS} is missing. Install Debian's Prometheus package (scripts/setup-test.sh does):\n"
            "    apt-get update && apt-get install -y --no-install-recommends prometheus",
            pytrace=False,
        )
    return path


def promtool_binary() -> str:
    path = shutil.which("promtool")
    if not path and os.access("/usr/bin/promtool", os.X_OK):
        path = "/usr/bin/promtool"
    if not path:
        pytest.fail("promtool is missing: it comes with Debian's prometheus package", pytrace=False)
    return path


def prometheus_config(stack) -> str:
    targets = [
        (stack.ports.storefront_metrics, PODS["storefront"], "storefront"),
        (stack.ports.ledger_metrics, PODS["ledger"], "ledger"),
        (stack.ports.consumer_metrics, PODS["consumer"], "purchase-consumer"),
    ]
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "scrape_configs": [
            {
                # What the kubernetes-pods job of k8s/monitoring/prometheus-values.yaml gives every series.
                "job_name": "kubernetes-pods",
                "honor_labels": False,
                "metrics_path": "/metrics",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{port}"],
                        "labels": {"namespace": NAMESPACE, "pod": pod, "app": app},
                    }
                    for port, pod, app in targets
                ],
            }
        ],
    }
    return json.dumps(config, indent=2)  # JSON is YAML


class Prometheus:
    def __init__(self, workdir: Path, config: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(config)
        self.log = workdir / "prometheus.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        def ready():
            if self.popen.poll() is not None:
                raise RuntimeError(f"prometheus exited early:\n{self.output()}")
            return http_ok(f"{self.url}/-/ready")

        wait_until(ready, 20, "prometheus ready", interval=0.1)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def api_query(self, query: str) -> list[dict]:
        response = http.get(f"{self.url}/api/v1/query?" + urlencode({"query": query}), timeout=5)
        response.raise_for_status()
        return response.json()["data"]["result"]

    def promtool_query(self, query: str) -> list[dict]:
        """`promtool query instant` against this server: the vector's samples."""
        proc = subprocess.run(
            [promtool_binary(), "query", "instant", "-o", "json", self.url, query],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, f"promtool query instant {query!r} failed:\n{proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)


def consumer_lag(stack) -> float | None:
    lags = samples(scrape(stack.ports.consumer_metrics), "kafka_consumer_lag")
    return sum(v for _, v in lags) if lags else None


def value_of(result: list[dict]) -> float:
    assert len(result) == 1, f"expected one series, got {result}"
    return float(result[0]["value"][1])


@pytest.mark.timeout(90)
def test_adapter_queries_against_a_real_prometheus(stack, tmp_path, userid):
    prometheus_binary()
    promtool_binary()
    prom = Prometheus(tmp_path / "prometheus", prometheus_config(stack))
    try:
        prom.start()

        # Every target scraped at least once before the traffic starts.
        def all_up():
            up = prom.api_query('up{job="kubernetes-pods"}')
            return len(up) == 3 and all(r["value"][1] == "1" for r in up)

        wait_until(all_up, 15, "prometheus scraping all three targets", interval=0.2)
        counter = f'django_http_requests_total_by_method_total{{pod="{PODS["storefront"]}"}}'
        wait_until(
            lambda: prom.api_query(counter),
            10,
            "the storefront's request counter in prometheus",
            interval=0.2,
        )

        # A paced load from two connections, all of it one customer's.
        load = Load(
            stack, count=int(RATE * DRIVE_SECONDS), threads=2, rate=RATE, userids=[userid], seconds=60
        )
        load.start().join()
        driven = {"sent": load.sent, "by_status": dict(load.statuses), "elapsed": load.elapsed}
        assert load.statuses[201] == load.sent, driven
        assert load.elapsed < WINDOW_SECONDS - 20, f"driving took too long to fit the window: {driven}"

        # The consumer catches up; the lag metric says so (checked on the consumer first).
        wait_until(lambda: consumer_lag(stack) == 0, 20, "consumer lag 0 on the consumer's own /metrics", 0.2)
        # Prometheus has scraped the last values: its counter and lag equal the processes' own.
        own_count = total(
            scrape(stack.ports.storefront_metrics), "django_http_requests_total_by_method_total"
        )

        def scraped_last_values():
            count = prom.api_query(f"sum({counter})")
            lag = prom.api_query(f'sum(kafka_consumer_lag{{namespace="{NAMESPACE}"}})')
            return count and lag and value_of(count) >= own_count and value_of(lag) == 0

        wait_until(scraped_last_values, 10 * SCRAPE_INTERVAL_S, "prometheus scraping the last values", 0.2)

        # (a) http_requests_per_second for the storefront pod, as the storefront's HPA asks for it.
        rps_query = render_adapter_query(
            "http_requests_per_second", f'namespace="{NAMESPACE}",pod=~"{PODS["storefront"]}"', "pod"
        )
        result = prom.promtool_query(rps_query)
        assert [r["metric"] for r in result] == [{"pod": PODS["storefront"]}], result
        measured = value_of(result)
        expected = driven["sent"] / WINDOW_SECONDS
        driven_rate = driven["sent"] / driven["elapsed"]
        print(f"{rps_query} = {measured:.3f}; expected {expected:.3f} ({driven}, {driven_rate:.1f} req/s)")
        assert abs(measured - expected) <= 0.25 * expected, (
            f"adapter query {rps_query!r} gave {measured:.3f} req/s; the storefront got "
            f"{driven['sent']} requests ({driven_rate:.1f} req/s for {driven['elapsed']:.1f}s) in the "
            f"query's {WINDOW_SECONDS:.0f}s window, i.e. {expected:.3f} req/s averaged over it (±25% allowed)"
        )

        # (b) purchases_consumer_lag, as the consumer's HPA asks for it.
        lag_query = render_adapter_query("purchases_consumer_lag", f'namespace="{NAMESPACE}"', "")
        result = prom.promtool_query(lag_query)
        assert result, f"{lag_query!r} returned no sample: is kafka_consumer_lag scraped with its labels?"
        lag = value_of(result)
        print(f"{lag_query} = {lag}")
        assert 0 <= lag < 50, f"{lag_query!r} = {lag} after the consumer caught up"
        series = prom.promtool_query(f'count(kafka_consumer_lag{{namespace="{NAMESPACE}"}})')
        assert value_of(series) == stack.partitions, f"one lag series per partition expected: {series}"
    finally:
        prom.stop()
