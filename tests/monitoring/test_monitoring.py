"""Checks of the monitoring deliverable in k8s/monitoring/.

- rules.yaml passes `promtool check rules` and the unit tests in k8s/monitoring/tests/;
- every dashboard query parses and names only metrics the services export;
- the prometheus-adapter rules, rendered as the adapter renders them, parse and compute
  what the HPAs need (checked with `promtool test rules` on synthetic series);
- the HPAs ask for exactly the metric names the adapter serves;
- the Prometheus chart values scrape pods with the labels everything else relies on and
  load rules.yaml itself (one copy of the rules).

Needs `promtool` on PATH: Debian's `prometheus` package
(`apt-get install -y --no-install-recommends prometheus`). Without it these tests fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .adapter import (
    REPO_ROOT,
    adapter_rules,
    load_values,
    render_adapter_query,
    render_template,
)

MONITORING = REPO_ROOT / "k8s" / "monitoring"
RULES = MONITORING / "rules.yaml"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
DASHBOARD = MONITORING / "dashboard.json"
PROMETHEUS_VALUES = MONITORING / "prometheus-values.yaml"
INSTALL_SH = MONITORING / "install.sh"

NAMESPACE = "purchase-system"
HPA_PODS_METRIC = "http_requests_per_second"
HPA_EXTERNAL_METRIC = "purchases_consumer_lag"

# What the services export (contract.md, "Metrics"). Histograms also export _bucket,
# _count and _sum series.
COUNTERS = {
    "django_http_requests_total_by_method_total",
    "django_http_requests_total_by_view_transport_method_total",
    "django_http_responses_total_by_status_total",
    "purchases_published_total",
    "ledger_request_errors_total",
    "kafka_messages_processed_total",
}
HISTOGRAMS = {
    "django_http_requests_latency_seconds_by_view_method",
    "django_http_requests_latency_including_middlewares_seconds",
    "purchase_publish_seconds",
    "ledger_request_seconds",
    "kafka_message_processing_seconds",
    "kafka_consumer_batch_size",
}
GAUGES = {"kafka_consumer_lag"}
# Made by Prometheus itself for every scrape target (used for "consumer down").
SCRAPE_SERIES = {"up"}
# From the standard exporters: kafka_exporter (Strimzi's, k8s/base/kafka.yaml), Percona's
# mongodb_exporter (values in k8s/monitoring), kube-state-metrics (part of the Prometheus
# chart; psmdb_backup_* from its custom resource configuration there), cert-manager's
# controller and the kubelet.
EXPORTER_SERIES = {
    "kafka_topic_partition_under_replicated_partition",
    "kafka_brokers",
    "mongodb_up",
    "kube_pod_container_status_restarts_total",
    "psmdb_backup_completed_timestamp_seconds",
    "certmanager_certificate_expiration_timestamp_seconds",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
}
EXPORTED = COUNTERS | GAUGES | {h + suffix for h in HISTOGRAMS for suffix in ("_bucket", "_count", "_sum")}
ALLOWED_IN_QUERIES = EXPORTED | SCRAPE_SERIES | EXPORTER_SERIES

REQUIRED_ALERTS = {
    "PurchaseHTTP5xxRatioHigh",
    "PurchasePublishFailing",
    "PurchaseConsumerLagGrowing",
    "PurchaseConsumerDown",
    "PurchaseConsumerPodDown",
    "PurchaseDeadLetterQueueGrowing",
    "PurchaseLedgerLatencyHigh",
    # Availability (the platform review): pods absent, a stuck loop, replication, the database.
    "PurchaseStorefrontDown",
    "PurchaseLedgerDown",
    "PurchaseConsumerStalled",
    "PurchaseConsumerRestarting",
    "PurchaseKafkaUnderReplicatedPartitions",
    "PurchaseKafkaExporterDown",
    "PurchaseMongoDBDown",
    # The data tier and the platform: brokers, backups, certificates, disks.
    "PurchaseKafkaBrokersMissing",
    "PurchaseMongoDBBackupStale",
    "PurchaseCertificateExpiringSoon",
    "PurchaseVolumeFillingUp",
}
RUNBOOKS = REPO_ROOT / "docs" / "kubernetes-runbooks.md"
RUNBOOK_BASE = "https://github.com/example/purchase-system/blob/main/docs/kubernetes-runbooks.md#"

# The labels the documented scrape job adds (prometheus-values.yaml).
SCRAPE_LABELS = {"namespace", "pod", "app"}


# --------------------------------------------------------------------------- helpers


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH. Install Debian's Prometheus package, which provides "
            "/usr/bin/promtool:\n"
            "    apt-get update && apt-get install -y --no-install-recommends prometheus\n"
            "(--no-install-recommends keeps prometheus-node-exporter, which would take "
            "port 9100, off the machine).",
            pytrace=False,
        )
    return path


def run_promtool(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    proc = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    return proc


def assert_promtool_ok(*args: str, cwd: Path = REPO_ROOT) -> str:
    proc = run_promtool(*args, cwd=cwd)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def check_queries_parse(tmp_path: Path, queries: dict[str, str]) -> None:
    """Validate PromQL offline: each query becomes a recording rule for `promtool check rules`."""
    rules = []
    for i, (label, expr) in enumerate(queries.items()):
        rules.append({"record": f"check:query_{i}", "expr": expr, "labels": {"source": label[:200]}})
    path = tmp_path / "queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}, sort_keys=False))
    assert_promtool_ok("check", "rules", str(path))


_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "bool", "offset", "inf", "nan", "atan2",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (selectors, not functions or labels)."""
    names = set(re.findall(r'__name__\s*=\s*"([^"]*)"', expr))
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)  # Grafana variables
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        token, is_call = m.group(1), m.group(2)
        if is_call or token.lower() in _KEYWORDS:
            continue
        names.add(token)
    return names


def load_rules() -> dict:
    return yaml.safe_load(RULES.read_text())


def dashboard_targets() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((panel.get("title", "?"), target["expr"]))
            walk(panel.get("panels", []))

    walk(dash["panels"])
    return out


def grafana_to_promql(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("${namespace}", NAMESPACE)
        .replace("$namespace", NAMESPACE)
    )


# ------------------------------------------------------------------- unit tests of helpers


def test_promql_metric_name_parser():
    expr = (
        'histogram_quantile(0.99, sum by (le, app) (rate(foo_bucket{a="x{y}",b=~"1|2"}[5m])))'
        " / on (app) group_left(pod) bar offset 15m and ignoring(le) baz_total > bool 1e3"
        ' unless absent(up{app="c"} == 1) or sum(qux) by (namespace) or {__name__="quux"}'
        " or rate(zed[$__rate_interval]) or max_over_time(w[1h:5m])"
    )
    assert promql_metric_names(expr) == {
        "foo_bucket", "bar", "baz_total", "up", "qux", "quux", "zed", "w",
    }  # fmt: skip


def test_render_template_substitutes_adapter_fields():
    assert (
        render_template('sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<< .GroupBy >>)',
                        "s", 'a="b"', "pod")
        == 'sum(rate(s{a="b"}[1m])) by (pod)'
    )  # fmt: skip
    with pytest.raises(ValueError):
        render_template("<<.LabelValuesByName>>", "s", "", "")


# ------------------------------------------------------------------------ rule files


def test_promtool_check_rules():
    out = assert_promtool_ok("check", "rules", str(RULES))
    assert "SUCCESS" in out


def test_promtool_unit_tests_pass():
    assert RULE_TESTS, "no promtool unit tests in k8s/monitoring/tests/"
    out = assert_promtool_ok("test", "rules", *[str(p) for p in RULE_TESTS])
    assert "FAILED" not in out, out


def test_required_alerts_exist_and_each_has_a_firing_unit_test():
    alerts = {r["alert"] for g in load_rules()["groups"] for r in g["rules"] if "alert" in r}
    assert REQUIRED_ALERTS <= alerts, f"missing alerts: {REQUIRED_ALERTS - alerts}"

    fired, quiet = set(), set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../rules.yaml"], f"{path.name} must test rules.yaml"
        for test in doc["tests"]:
            for art in test.get("alert_rule_test", []):
                (fired if art.get("exp_alerts") else quiet).add(art["alertname"])
    assert alerts <= fired, f"alerts never shown firing in a unit test: {alerts - fired}"
    assert alerts <= quiet, f"alerts never shown quiet in a unit test: {alerts - quiet}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_alert_links_its_runbook_section():
    anchors = _anchors(RUNBOOKS.read_text())
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            url = rule["annotations"]["runbook_url"]
            assert url == RUNBOOK_BASE + rule["alert"].lower(), rule["alert"]
            assert url.removeprefix(RUNBOOK_BASE) in anchors, f"no section {rule['alert']} in {RUNBOOKS.name}"


def test_alertmanager_sends_every_alert_to_a_receiver_from_the_store():
    values = load_values(PROMETHEUS_VALUES)
    config = values["alertmanager"]["config"]
    assert values["alertmanager"]["enabled"] is True
    receivers = {r["name"]: r for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers and "routes" not in config["route"]
    [hook] = receivers[config["route"]["receiver"]]["webhook_configs"]
    # The URL is a file from the mounted Secret, which the ExternalSecret writes.
    assert "url" not in hook
    [mount] = values["alertmanager"]["extraSecretMounts"]
    assert hook["url_file"].startswith(mount["mountPath"] + "/")
    external = yaml.safe_load_all((MONITORING / "external-secrets.yaml").read_text())
    targets = {d["spec"]["target"]["name"]: d for d in external}
    keys = {d["secretKey"] for d in targets[mount["secretName"]]["spec"]["data"]}
    assert hook["url_file"].rsplit("/", 1)[1] in keys


def test_backup_metric_is_recorded_from_the_operators_backups():
    ksm = load_values(PROMETHEUS_VALUES)["kube-state-metrics"]
    [resource] = ksm["customResourceState"]["config"]["spec"]["resources"]
    assert resource["groupVersionKind"] == {
        "group": "psmdb.percona.com", "version": "v1", "kind": "PerconaServerMongoDBBackup",
    }  # fmt: skip
    [metric] = resource["metrics"]
    name = f"{resource['metricNamePrefix']}_{metric['name']}"
    assert name == "psmdb_backup_completed_timestamp_seconds"
    assert metric["each"]["gauge"]["labelsFromPath"] == {"state": ["state"]}
    assert {"cluster", "namespace"} <= set(resource["labelsFromPath"])
    [rule] = ksm["rbac"]["extraRules"]
    assert rule["resources"] == ["perconaservermongodbbackups"] and "watch" in rule["verbs"]


def test_recording_rules_are_tested_or_used():
    groups = load_rules()["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    used = set()
    for g in groups:
        for r in g["rules"]:
            used |= promql_metric_names(r["expr"])
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for pet in test.get("promql_expr_test", []):
                used |= promql_metric_names(pet["expr"])
    assert recorded <= used, f"recording rules neither tested nor used: {recorded - used}"


def test_rules_read_only_exported_metrics():
    groups = load_rules()["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    for g in groups:
        for r in g["rules"]:
            unknown = promql_metric_names(r["expr"]) - ALLOWED_IN_QUERIES - recorded
            assert not unknown, f"{r.get('alert') or r.get('record')} reads unknown metrics {unknown}"


# ------------------------------------------------------------------------- dashboard


def test_dashboard_queries_name_only_exported_metrics():
    targets = dashboard_targets()
    assert len(targets) >= 10
    for title, expr in targets:
        names = promql_metric_names(expr)
        assert names, f"panel {title!r}: no metric found in {expr!r}"
        unknown = names - ALLOWED_IN_QUERIES
        assert not unknown, f"panel {title!r} queries unknown metrics {unknown}: {expr}"


def test_dashboard_covers_the_required_views():
    exprs = " ".join(expr for _, expr in dashboard_targets())
    for needed in (
        "django_http_requests_total_by_method_total",  # request rate
        "django_http_requests_latency_seconds_by_view_method_bucket",  # latency percentiles
        "purchases_published_total",  # publish outcomes
        "kafka_messages_processed_total",  # consumer throughput
        "sum(max by (topic, partition) (kafka_consumer_lag",  # lag, as the HPA sees it
        'status="dead_lettered"',  # DLQ
    ):
        assert needed in exprs, f"dashboard has no panel using {needed}"
    assert "histogram_quantile(0.99" in exprs and "histogram_quantile(0.5" in exprs


def test_dashboard_queries_parse(tmp_path):
    queries = {
        f"{title} #{i}": grafana_to_promql(expr) for i, (title, expr) in enumerate(dashboard_targets())
    }
    for q in queries.values():
        assert "$" not in q, f"unsubstituted Grafana variable in {q}"
    check_queries_parse(tmp_path, queries)


def test_dashboard_is_importable_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["namespace"]["current"]["value"] == NAMESPACE
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}"


# ----------------------------------------------------------------- prometheus-adapter


POD_MATCHERS = f'namespace="{NAMESPACE}",pod=~"storefront-a|storefront-b"'


def test_adapter_serves_exactly_the_hpa_metrics():
    values = load_values()
    assert values["rules"]["default"] is False, "the adapter's catch-all default rules must be off"
    rules = adapter_rules(values)
    assert {r.name for r in rules if r.kind == "custom"} == {HPA_PODS_METRIC}
    assert {r.name for r in rules if r.kind == "external"} == {HPA_EXTERNAL_METRIC}
    assert len(rules) == 2


def test_adapter_rules_use_the_scrape_labels():
    rules = {r.name: r for r in adapter_rules()}
    pods = rules[HPA_PODS_METRIC]
    assert pods.series == "django_http_requests_total_by_method_total"
    assert pods.resources["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    # only storefront and ledger pods have the metric for the HPA
    assert 'app=~"storefront|ledger"' in pods.series_query
    lag = rules[HPA_EXTERNAL_METRIC]
    assert lag.series == "kafka_consumer_lag"
    assert lag.resources["overrides"] == {"namespace": {"resource": "namespace"}}
    assert lag.resources.get("namespaced", True) is True
    for label in re.findall(r"([a-z_]+)\s*[!=]~?", pods.series_query + lag.series_query):
        assert label in SCRAPE_LABELS | {"topic", "partition", "__name__"}, label


def test_adapter_queries_render_as_documented():
    # What the adapter sends for a Pods metric is grouped by "pod"; the brief's
    # "namespace,pod" form must work as well.
    assert render_adapter_query(HPA_PODS_METRIC, POD_MATCHERS, "namespace,pod") == (
        "sum(rate(django_http_requests_total_by_method_total"
        f'{{namespace="{NAMESPACE}",pod=~"storefront-a|storefront-b"}}[1m])) by (namespace,pod)'
    )
    assert render_adapter_query(HPA_PODS_METRIC, POD_MATCHERS, "pod").endswith("by (pod)")
    assert render_adapter_query(HPA_EXTERNAL_METRIC, f'namespace="{NAMESPACE}"', "") == (
        f'sum(max by (topic, partition) (kafka_consumer_lag{{namespace="{NAMESPACE}"}}))'
    )
    # looked up by source series too
    assert render_adapter_query("kafka_consumer_lag", 'namespace="x"', "") == render_adapter_query(
        HPA_EXTERNAL_METRIC, 'namespace="x"', ""
    )
    with pytest.raises(KeyError):
        render_adapter_query("no_such_metric", "", "")


def test_adapter_queries_parse(tmp_path):
    queries = {}
    for rule in adapter_rules():
        queries[f"{rule.name} seriesQuery"] = rule.series_query
        if rule.kind == "custom":
            for group_by in ("pod", "namespace,pod"):
                for matchers in (POD_MATCHERS, f'namespace="{NAMESPACE}",pod="storefront-a"'):
                    queries[f"{rule.name} {matchers} {group_by}"] = render_adapter_query(
                        rule.name, matchers, group_by
                    )
        else:
            for matchers in (f'namespace="{NAMESPACE}"', f'topic="purchases",namespace="{NAMESPACE}"'):
                queries[f"{rule.name} {matchers}"] = render_adapter_query(rule.name, matchers, "")
    check_queries_parse(tmp_path, queries)


def test_adapter_queries_compute_what_the_hpas_need(tmp_path):
    """Evaluate the rendered queries with promtool on series labelled as the scrape job labels them."""
    pods_q = render_adapter_query(HPA_PODS_METRIC, POD_MATCHERS, "pod")
    pods_q_ns = render_adapter_query(HPA_PODS_METRIC, POD_MATCHERS, "namespace,pod")
    lag_q = render_adapter_query(HPA_EXTERNAL_METRIC, f'namespace="{NAMESPACE}"', "")
    rules = {
        "groups": [
            {
                "name": "adapter",
                "rules": [
                    {"record": "adapter:http_requests_per_second", "expr": pods_q},
                    {"record": "adapter:http_requests_per_second:ns", "expr": pods_q_ns},
                    {"record": "adapter:purchases_consumer_lag", "expr": lag_q},
                ],
            }
        ]
    }
    (tmp_path / "adapter.rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    ns = NAMESPACE

    def web(namespace, pod, method):
        app = pod.rsplit("-", 1)[0]
        return (
            "django_http_requests_total_by_method_total"
            f'{{namespace="{namespace}",pod="{pod}",app="{app}",method="{method}"}}'
        )

    def lag(namespace, pod, partition):
        return (
            "kafka_consumer_lag"
            f'{{namespace="{namespace}",pod="{pod}",app="purchase-consumer",'
            f'topic="purchases",partition="{partition}"}}'
        )

    input_series = [
        # storefront-a: POST 2/s + GET 1/s (series already aggregated over the workers)
        (web(ns, "storefront-a", "POST"), "0+30x40"),
        (web(ns, "storefront-a", "GET"), "0+15x40"),
        # storefront-b: 0.5/s
        (web(ns, "storefront-b", "POST"), "0+7.5x40"),
        # a pod the HPA did not ask about, and the same pod name in another namespace
        (web(ns, "ledger-a", "GET"), "0+150x40"),
        (web("staging", "storefront-a", "POST"), "0+150x40"),
        # lag: partition 1 moved from consumer-a to consumer-b and both still report it
        (lag(ns, "purchase-consumer-a", 0), "100x40"),
        (lag(ns, "purchase-consumer-a", 1), "40x40"),
        (lag(ns, "purchase-consumer-b", 1), "30x40"),
        (lag(ns, "purchase-consumer-b", 2), "5x40"),
        (lag("staging", "purchase-consumer-s", 0), "9999x40"),
    ]
    per_pod = {
        "adapter:http_requests_per_second": {"storefront-a": 3, "storefront-b": 0.5},
        "adapter:http_requests_per_second:ns": {"storefront-a": 3, "storefront-b": 0.5},
    }
    expr_tests = []
    for record, expected in per_pod.items():
        ns_label = f'namespace="{ns}",' if record.endswith(":ns") else ""
        expr_tests.append(
            {
                "expr": record,
                "eval_time": "5m",
                "exp_samples": [
                    {"labels": f'{record}{{{ns_label}pod="{pod}"}}', "value": value}
                    for pod, value in expected.items()
                ],
            }
        )
    # 100 + max(40, 30) + 5: the moved partition counts once; staging not at all
    expr_tests.append(
        {
            "expr": "adapter:purchases_consumer_lag",
            "eval_time": "5m",
            "exp_samples": [{"labels": "adapter:purchases_consumer_lag", "value": 145}],
        }
    )
    unit = {
        "rule_files": ["adapter.rules.yaml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": s, "values": v} for s, v in input_series],
                "promql_expr_test": expr_tests,
            }
        ],
    }
    test_file = tmp_path / "adapter_test.yaml"
    test_file.write_text(yaml.safe_dump(unit, sort_keys=False))
    out = assert_promtool_ok("test", "rules", str(test_file), cwd=tmp_path)
    assert "SUCCESS" in out, out


# ----------------------------------------------------------------------------- HPAs


def _k8s_documents():
    for path in sorted((REPO_ROOT / "k8s").rglob("*.y*ml")):
        if MONITORING in path.parents:
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if isinstance(doc, dict):
                yield path, doc


def test_hpas_use_exactly_the_adapter_metric_names():
    rules = adapter_rules()
    pods_names = {r.name for r in rules if r.kind == "custom"}
    external_names = {r.name for r in rules if r.kind == "external"}

    hpas = [(path, doc) for path, doc in _k8s_documents() if doc.get("kind") == "HorizontalPodAutoscaler"]
    by_target: dict[str, list[tuple[str, str]]] = {}
    for path, doc in hpas:
        spec = doc.get("spec") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name") or doc["metadata"]["name"]
        for metric in spec.get("metrics") or []:
            mtype = metric.get("type")
            if mtype == "Pods":
                name = metric["pods"]["metric"]["name"]
                assert name in pods_names, (
                    f"{path.relative_to(REPO_ROOT)}: HPA {target} asks for Pods metric {name!r}; "
                    f"prometheus-adapter serves {sorted(pods_names)}"
                )
            elif mtype == "External":
                name = metric["external"]["metric"]["name"]
                assert name in external_names, (
                    f"{path.relative_to(REPO_ROOT)}: HPA {target} asks for External metric {name!r}; "
                    f"prometheus-adapter serves {sorted(external_names)}"
                )
            elif mtype == "Object":
                pytest.fail(f"{path}: Object metrics are not served by the adapter rules")
            else:
                continue
            by_target.setdefault(target, []).append((mtype, name))

    expected = {
        "storefront": ("Pods", HPA_PODS_METRIC),
        "ledger": ("Pods", HPA_PODS_METRIC),
        "purchase-consumer": ("External", HPA_EXTERNAL_METRIC),
    }
    for target, metric in expected.items():
        assert metric in by_target.get(target, []), (
            f"no HorizontalPodAutoscaler under k8s/ scales {target} on {metric[0]} metric "
            f"{metric[1]!r} (found: {by_target or 'no HPA manifests yet'})"
        )


# ------------------------------------------------------------- prometheus chart values


def _relabel(configs: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus relabelling (keep / drop / replace), enough for the pod job."""
    labels = dict(labels)
    for cfg in configs:
        action = cfg.get("action", "replace")
        sources = cfg.get("source_labels") or []
        value = cfg.get("separator", ";").join(labels.get(s, "") for s in sources)
        regex = re.compile(f"^(?:{cfg.get('regex', '(.*)')})$")
        m = regex.match(value)
        if action == "keep":
            if not m:
                return None
        elif action == "drop":
            if m:
                return None
        elif action == "replace":
            if m:
                repl = cfg.get("replacement", "$1")
                new = re.sub(
                    r"\$(?:\{(\w+)\}|(\d+))",
                    lambda g, m=m: m.group(int(g.group(1) or g.group(2))) or "",
                    repl,
                )
                if new:
                    labels[cfg["target_label"]] = new
                else:
                    labels.pop(cfg["target_label"], None)
        else:
            raise AssertionError(f"relabel action {action} not simulated")
    return labels


def _pod_target(**meta) -> dict[str, str]:
    base = {
        "__address__": "10.1.2.3:8000",
        "__metrics_path__": "/metrics",
        "__scheme__": "http",
        "__meta_kubernetes_namespace": NAMESPACE,
        "__meta_kubernetes_pod_name": "storefront-7d9f-abcde",
        "__meta_kubernetes_pod_ip": "10.1.2.3",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "9100",
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
    }
    base.update(meta)
    return base


def _pod_job() -> dict:
    values = yaml.safe_load(PROMETHEUS_VALUES.read_text())
    job = values["scrapeConfigs"]["kubernetes-pods"]
    assert job.get("enabled", True)
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    return job


def test_pod_scrape_job_adds_namespace_pod_and_app():
    job = _pod_job()
    relabel = job["relabel_configs"]

    both = _relabel(
        relabel,
        _pod_target(
            __meta_kubernetes_pod_label_app="storefront",
            __meta_kubernetes_pod_label_app_kubernetes_io_name="storefront",
        ),
    )
    assert both is not None
    assert both["namespace"] == NAMESPACE
    assert both["pod"] == "storefront-7d9f-abcde"
    assert both["app"] == "storefront"
    assert both["__address__"] == "10.1.2.3:9100"
    assert both["__metrics_path__"] == "/metrics"

    only_app = _relabel(relabel, _pod_target(__meta_kubernetes_pod_label_app="purchase-consumer"))
    assert only_app["app"] == "purchase-consumer"
    only_name = _relabel(relabel, _pod_target(__meta_kubernetes_pod_label_app_kubernetes_io_name="ledger"))
    assert only_name["app"] == "ledger"
    # app.kubernetes.io/name wins over app
    differ = _relabel(
        relabel,
        _pod_target(
            __meta_kubernetes_pod_label_app="x",
            __meta_kubernetes_pod_label_app_kubernetes_io_name="ledger",
        ),
    )
    assert differ["app"] == "ledger"

    not_annotated = _pod_target(__meta_kubernetes_pod_annotation_prometheus_io_scrape="false")
    assert _relabel(relabel, not_annotated) is None
    assert _relabel(relabel, {k: v for k, v in _pod_target().items() if "scrape" not in k}) is None
    assert _relabel(relabel, _pod_target(__meta_kubernetes_pod_phase="Succeeded")) is None
    custom_path = _relabel(relabel, _pod_target(__meta_kubernetes_pod_annotation_prometheus_io_path="/m"))
    assert custom_path["__metrics_path__"] == "/m"
    # labels the job sets are exactly the ones everything else relies on
    assert {c["target_label"] for c in relabel if "target_label" in c} - {
        "__address__", "__metrics_path__", "__scheme__",
    } == SCRAPE_LABELS  # fmt: skip
    assert job.get("honor_labels") is False


def test_chart_loads_rules_yaml_as_the_single_copy():
    values = yaml.safe_load(PROMETHEUS_VALUES.read_text())
    server_files = values.get("serverFiles") or {}
    # no inline copy of the rules that could drift from rules.yaml
    for key, content in server_files.items():
        if key != "prometheus.yml":
            assert not (content or {}).get("groups"), f"serverFiles.{key} duplicates rules; use rules.yaml"
    assert not values.get("ruleFiles"), "ruleFiles is filled from rules.yaml by --set-file"
    rule_files = server_files["prometheus.yml"]["rule_files"]
    assert "/etc/config/purchase-system-rules.yml" in rule_files
    set_file = r"--set-file 'ruleFiles.purchase-system-rules\.yml=k8s/monitoring/rules.yaml'"
    assert set_file in INSTALL_SH.read_text(), "install.sh must load rules.yaml into the chart"
    assert set_file in PROMETHEUS_VALUES.read_text()
    adapter_url = load_values()["prometheus"]["url"]
    assert adapter_url == "http://prometheus-server.monitoring.svc"


def test_scrape_interval_suits_the_adapter_window():
    values = yaml.safe_load(PROMETHEUS_VALUES.read_text())
    interval = values["server"]["global"]["scrape_interval"]
    assert interval.endswith("s") and int(interval[:-1]) * 4 <= 60, (
        "the adapter's rate window is 1m: scrape at least every 15s"
    )
    for rule in adapter_rules():
        for window in re.findall(r"\[(\w+)\]", rule.metrics_query):
            assert window == "1m"
