"""The Kafka and MongoDB exporters fit the scrape job, the alerts and the NetworkPolicies.

The Kafka exporter is Strimzi's (spec.kafkaExporter of the Kafka resource, in
purchase-system); the MongoDB exporter is the prometheus-mongodb-exporter chart in
`monitoring`, logging in with a URI from the secret store over TLS.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.k8s.manifests import PRODUCTION, find, one, render

from .adapter import REPO_ROOT
from .test_monitoring import INSTALL_SH, _pod_job, _pod_target, _relabel, load_rules

MONITORING = REPO_ROOT / "k8s" / "monitoring"
MONGODB_VALUES = MONITORING / "mongodb-exporter-values.yaml"


@pytest.fixture(scope="module")
def production():
    return render(PRODUCTION)


def _scraped(namespace: str, app: str, annotations: dict) -> dict | None:
    meta = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
        **{
            "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-z0-9]", "_", k): v
            for k, v in annotations.items()
        },
    }
    return _relabel(_pod_job()["relabel_configs"], _pod_target(**meta))


def test_kafka_exporter_is_scraped_with_its_app_label(production):
    # Strimzi labels the exporter's pods app.kubernetes.io/name=kafka-exporter, port 9404.
    exporter = one(production, "Kafka", "kafka")["spec"]["kafkaExporter"]
    annotations = exporter["template"]["pod"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9404"
    labels = _scraped("purchase-system", "kafka-exporter", annotations)
    assert labels is not None, "not scraped"
    assert (labels["app"], labels["namespace"]) == ("kafka-exporter", "purchase-system")
    assert labels["__address__"] == "10.1.2.3:9404"
    # Only the monitoring namespace reaches its metrics port.
    policy = one(production, "NetworkPolicy", "kafka-exporter-metrics")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "kafka-exporter"}}
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9404}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_mongodb_exporter_is_scraped_with_its_app_label():
    values = yaml.safe_load(MONGODB_VALUES.read_text())
    annotations = values["podAnnotations"]
    assert annotations["prometheus.io/port"] == "9216"
    labels = _scraped("monitoring", values["nameOverride"], annotations)
    assert labels is not None, "not scraped"
    assert (labels["app"], labels["namespace"]) == ("mongodb-exporter", "monitoring")
    assert labels["__address__"] == "10.1.2.3:9216"


@pytest.mark.parametrize("app", ["kafka-exporter", "mongodb-exporter"])
def test_alerts_select_the_exporter_by_its_app_label(app):
    exprs = " ".join(r["expr"] for g in load_rules()["groups"] for r in g["rules"] if "alert" in r)
    assert f'app="{app}"' in exprs


def test_network_policy_admits_exactly_the_mongodb_exporter(production):
    values = yaml.safe_load(MONGODB_VALUES.read_text())
    peers = []
    for policy in find(production, "NetworkPolicy"):
        if (
            policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
            != "percona-server-mongodb"
        ):
            continue
        for rule in policy["spec"]["ingress"]:
            peers += [p for p in rule["from"] if p.get("podSelector") and "namespaceSelector" in p]
    assert peers == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": values["nameOverride"]}},
        }
    ]
    values_file = "k8s/monitoring/mongodb-exporter-values.yaml"
    command = f"prometheus-mongodb-exporter \\\n  --namespace monitoring -f {values_file}"
    assert command in INSTALL_SH.read_text()


def test_mongodb_exporter_logs_in_over_tls_with_a_uri_from_the_store():
    values = yaml.safe_load(MONGODB_VALUES.read_text())
    secret = values["existingSecret"]
    external = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((MONITORING / "external-secrets.yaml").read_text())
    }
    target = external[secret["name"]]["spec"]["target"]
    uri = target["template"]["data"][secret["key"]]
    assert "tls=true" in uri and "replicaSet=rs0" in uri
    ca_file = re.search(r"tlsCAFile=([^&]+)", uri).group(1)
    [mount] = values["volumeMounts"]
    assert ca_file == f"{mount['mountPath']}/ca.crt"
    [volume] = values["volumes"]
    assert volume["secret"]["secretName"] in INSTALL_SH.read_text()
    # The operator's cluster-monitor user, never a literal credential in the script.
    properties = {d["remoteRef"]["property"] for d in external[secret["name"]]["spec"]["data"]}
    assert properties == {"MONGODB_CLUSTER_MONITOR_USER", "MONGODB_CLUSTER_MONITOR_PASSWORD"}
    assert "--from-literal=mongodb-uri" not in INSTALL_SH.read_text()


def test_mongodb_exporter_runs_locked_down():
    values = yaml.safe_load(MONGODB_VALUES.read_text())
    pod, container = values["podSecurityContext"], values["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False and container["readOnlyRootFilesystem"] is True
    assert values["resources"]["limits"] and values["resources"]["requests"]
