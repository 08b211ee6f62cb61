"""The Kafka and MongoDB exporters: their Helm values fit the scrape job, the alerts and the
NetworkPolicies that let them reach the brokers and the database."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.k8s.manifests import find, render

from .adapter import REPO_ROOT
from .test_monitoring import INSTALL_SH, _pod_job, _pod_target, _relabel, load_rules

MONITORING = REPO_ROOT / "k8s" / "monitoring"
EXPORTERS = {
    # app label -> (values file, chart, metrics port, the purchase-system pod it reaches, port)
    "kafka-exporter": ("kafka-exporter-values.yaml", "prometheus-kafka-exporter", 9308, "kafka", 9092),
    "mongodb-exporter": (
        "mongodb-exporter-values.yaml",
        "prometheus-mongodb-exporter",
        9216,
        "mongodb",
        27017,
    ),
}


def values(app: str) -> dict:
    return yaml.safe_load((MONITORING / EXPORTERS[app][0]).read_text())


def pod_annotations(app: str) -> dict:
    v = values(app)
    return v.get("podAnnotations") or v.get("annotations")


@pytest.fixture(scope="module")
def base():
    return render("k8s")


@pytest.mark.parametrize("app", EXPORTERS)
def test_exporter_is_scraped_with_its_app_label(app):
    _, _, port, _, _ = EXPORTERS[app]
    annotations = pod_annotations(app)
    assert annotations["prometheus.io/port"] == str(port)
    meta = {
        "__meta_kubernetes_namespace": "monitoring",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
        **{
            "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-z0-9]", "_", k): v
            for k, v in annotations.items()
        },
    }
    labels = _relabel(_pod_job()["relabel_configs"], _pod_target(**meta))
    assert labels is not None, "not scraped"
    assert (labels["app"], labels["namespace"]) == (app, "monitoring")
    assert labels["__address__"] == f"10.1.2.3:{port}"


@pytest.mark.parametrize("app", EXPORTERS)
def test_alerts_select_the_exporter_by_its_app_label(app):
    exprs = " ".join(r["expr"] for g in load_rules()["groups"] for r in g["rules"] if "alert" in r)
    assert f'app="{app}"' in exprs


@pytest.mark.parametrize("app", EXPORTERS)
def test_network_policy_admits_exactly_the_exporter(app, base):
    file, chart, _, target, port = EXPORTERS[app]
    v = values(app)
    # The chart labels the pod app.kubernetes.io/name = nameOverride (MongoDB), or takes podLabels.
    assert app in (v.get("nameOverride"), (v.get("podLabels") or {}).get("app.kubernetes.io/name"))
    peers = []
    for policy in find(base, "NetworkPolicy"):
        if policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") != target:
            continue
        for rule in policy["spec"]["ingress"]:
            if any(p["port"] == port for p in rule["ports"]):
                peers += [peer for peer in rule["from"] if "namespaceSelector" in peer]
    assert peers == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
        }
    ]
    assert f"{chart} \\\n  --namespace monitoring -f k8s/monitoring/{file}" in INSTALL_SH.read_text()


def test_exporters_point_at_purchase_system():
    assert values("kafka-exporter")["kafkaServer"] == ["kafka.purchase-system.svc.cluster.local:9092"]
    secret = values("mongodb-exporter")["existingSecret"]
    install = INSTALL_SH.read_text()
    assert f"create secret generic {secret['name']} --from-literal={secret['key']}=" in install
    assert "MONGODB_MONITOR_USERNAME" in install and "replicaSet=rs0" in install


@pytest.mark.parametrize("app", EXPORTERS)
def test_exporters_run_locked_down(app):
    v = values(app)
    pod = v.get("podSecurityContext") or v["securityContext"]
    container = v.get("containerSecurityContext") or v["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False and container["readOnlyRootFilesystem"] is True
    assert v["resources"]["limits"] and v["resources"]["requests"]
