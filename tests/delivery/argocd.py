"""Reading the Argo CD files (k8s/argocd/) and what their Applications deploy (tests/delivery).

An Application's source is rendered as Argo CD renders it: `kubectl kustomize` for a
kustomization (with the Application's `kustomize.commonAnnotations`, through a kustomization
of our own around it, as Argo CD's `kustomize edit` does), the YAML files of the folder
otherwise. Offline: no cluster, no Argo CD.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.k8s.manifests import KUBECTL, Doc, render

from .workflows import REPO

ARGOCD = REPO / "k8s" / "argocd"
HEALTH_PREFIX = "resource.customizations.health."
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
ENVIRONMENTS = ("local", "production")
# Kinds Kubernetes and the operators we use define as cluster-scoped. kustomize's namespace
# transformer cannot tell (it would give a ClusterIssuer in an overlay a namespace), so
# scope is read from here, and tests/delivery checks it against k8s/cluster/*, which has no
# namespace transformer.
CLUSTER_SCOPED = {
    ("", "Namespace"),
    ("", "PersistentVolume"),
    ("storage.k8s.io", "StorageClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("cert-manager.io", "ClusterIssuer"),
    ("external-secrets.io", "ClusterSecretStore"),
    ("external-secrets.io", "ClusterExternalSecret"),
    ("gateway.networking.k8s.io", "GatewayClass"),
}


def load(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def argocd_docs() -> list[Doc]:
    return [d for path in sorted(ARGOCD.rglob("*.yaml")) for d in load(path)]


def applications() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in argocd_docs() if d["kind"] == "Application"}


def projects() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in argocd_docs() if d["kind"] == "AppProject"}


def application_for(path: str) -> Doc:
    (found,) = [a for a in applications().values() if a["spec"]["source"]["path"] == path]
    return found


def health_checks() -> dict[str, str]:
    """`group_kind` -> Lua, from the argocd-cm patch."""
    (cm,) = [d for d in argocd_docs() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "argocd-cm"]
    return {k.removeprefix(HEALTH_PREFIX): v for k, v in cm["data"].items() if k.startswith(HEALTH_PREFIX)}


def group_kind(doc: Doc) -> tuple[str, str]:
    return doc["apiVersion"].rpartition("/")[0], doc["kind"]


def is_cluster_scoped(doc: Doc) -> bool:
    return group_kind(doc) in CLUSTER_SCOPED


def annotations(doc: Doc) -> dict[str, str]:
    return doc["metadata"].get("annotations") or {}


def wave(doc: Doc) -> int:
    return int(annotations(doc).get(SYNC_WAVE, "0"))


def sync_options(doc: Doc) -> set[str]:
    return {o.strip() for o in annotations(doc).get(SYNC_OPTIONS, "").split(",") if o.strip()}


@functools.cache
def _render(path: str, common_annotations: tuple[tuple[str, str], ...]) -> tuple[Doc, ...]:
    if not (REPO / path / "kustomization.yaml").exists():
        return tuple(d for file in sorted((REPO / path).glob("*.yaml")) for d in load(file))
    if not common_annotations:
        return tuple(render(path))
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(REPO / path, tmp)],
            "commonAnnotations": dict(common_annotations),
        }
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(wrapper))
        result = subprocess.run(
            [str(KUBECTL), "kustomize", tmp], capture_output=True, text=True, check=False, timeout=120
        )
    assert result.returncode == 0, (
        f"kubectl kustomize {path} (with commonAnnotations) failed:\n{result.stderr}"
    )
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def deployed(app: Doc) -> list[Doc]:
    """What the Application applies: its source rendered as Argo CD renders it."""
    source = app["spec"]["source"]
    common = source.get("kustomize", {}).get("commonAnnotations", {})
    return list(_render(source["path"], tuple(sorted(common.items()))))
