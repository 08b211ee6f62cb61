"""Rendering the kustomizations and reading the rendered objects (tests/k8s).

Each kustomization is rendered with the kubectl that requirements/k8s-checks.txt installs
into the running virtualenv (never a kubectl from PATH: its kustomize may be older). A
missing kubectl is a failure, not a skip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"
NAMESPACE = "purchase-system"
# The application as each environment deploys it, and what the cluster holds for it
# (Namespace, StorageClasses, issuer, secret store, GatewayClass), applied once apart.
KUSTOMIZATIONS = ["k8s/overlays/local", "k8s/overlays/production"]
CLUSTER_KUSTOMIZATIONS = ["k8s/cluster/local", "k8s/cluster/production"]
LOCAL = "k8s/overlays/local"
PRODUCTION = "k8s/overlays/production"
# The operators' API groups: their objects are checked against tests/k8s/schemas/, the
# rest against Kubernetes' own schemas (kubernetes-validate).
CUSTOM_GROUPS = {
    "kafka.strimzi.io",
    "psmdb.percona.com",
    "gateway.networking.k8s.io",
    "gateway.envoyproxy.io",
    "cert-manager.io",
    "external-secrets.io",
}
# The oldest Kubernetes version we support, and the newest schemas we have.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
APP_DEPLOYMENTS = ["storefront", "ledger", "purchase-consumer"]
WEB_PORTS = {"storefront": 8000, "ledger": 5001}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}

Doc = dict[str, Any]


def render(path: str) -> list[Doc]:
    assert KUBECTL.exists(), f"{KUBECTL} not found: install requirements/k8s-checks.txt into this virtualenv"
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO / path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def is_custom(doc: Doc) -> bool:
    return doc["apiVersion"].split("/")[0] in CUSTOM_GROUPS


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def pod_template(workload: Doc) -> Doc:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def pod_spec(workload: Doc) -> Doc:
    return pod_template(workload)["spec"]


def pod_labels(workload: Doc) -> dict[str, str]:
    return pod_template(workload)["metadata"].get("labels", {})


def containers(workload: Doc, *, init: bool = True) -> list[Doc]:
    spec = pod_spec(workload)
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def label_selector_matches(selector: Doc, labels: dict[str, str]) -> bool:
    if not matches(selector.get("matchLabels", {}), labels):
        return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        value = labels.get(expr["key"])
        op = expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def app_config(docs: list[Doc]) -> dict[str, str]:
    found = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("purchase-system-config")]
    assert len(found) == 1
    return found[0]["data"]


def env_value(container: Doc, name: str) -> str | None:
    for var in container.get("env", []):
        if var["name"] == name:
            return var.get("value")
    return None


def metrics_port(docs: list[Doc]) -> int:
    return int(app_config(docs)["METRICS_PORT"])
