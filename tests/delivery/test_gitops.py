"""Production runs what git names by digest, and Argo CD keeps it so (k8s/argocd/).

The production render's images, the release's pin script on a copy of k8s/, and the Argo CD
project and Applications against the overlays they deploy. Offline: kustomize renders, no
cluster.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s.manifests import APP_DEPLOYMENTS, KUBECTL, NAMESPACE, Doc, containers, render, workloads

from .workflows import PRODUCTION_OVERLAY, REPO

ARGOCD = REPO / "k8s" / "argocd"
PIN = REPO / ".github" / "scripts" / "pin_image.py"
DIGEST_REF = re.compile(r".+@sha256:[0-9a-f]{64}")
APP_IMAGE = "purchase-system"
# Images this project does not build, pinned by version tag in the data tier's manifests;
# the runbook's "Pin images by digest" says how to pin them too. Never a moving tag either way.
DATA_TIER_TAGGED = {"apache/kafka", "mongo"}
# Kinds that hold data: never pruned automatically.
DATA_KINDS = {
    "PersistentVolumeClaim",
    "StatefulSet",
    "Kafka",
    "KafkaNodePool",
    "KafkaTopic",
    "KafkaUser",
    "PerconaServerMongoDB",
    "MongoDBCommunity",
}
SECRET_KINDS = {"Secret", "ExternalSecret", "SealedSecret"}


def images(docs: list[Doc]) -> set[str]:
    return {c["image"] for w in workloads(docs) for c in containers(w)}


def repository(image: str) -> str:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


@pytest.fixture(scope="module")
def production() -> list[Doc]:
    return render("k8s/overlays/production")


# --- pinned by digest -------------------------------------------------------------------------


def test_production_runs_the_application_image_by_digest(production: list[Doc]):
    app = {
        c["image"]
        for name in APP_DEPLOYMENTS
        for w in workloads(production)
        if w["metadata"]["name"] == name
        for c in containers(w)
    }
    assert len(app) == 1, app
    (image,) = app
    assert DIGEST_REF.fullmatch(image), image
    # Jobs, CronJobs and init containers of the application run the same pinned image.
    assert {i for i in images(production) if repository(i) == repository(image)} == {image}


def test_production_images_all_carry_a_digest(production: list[Doc]):
    unpinned = {i for i in images(production) if not DIGEST_REF.fullmatch(i)}
    assert {repository(i) for i in unpinned} <= DATA_TIER_TAGGED, unpinned


def test_no_overlay_runs_a_moving_tag():
    for path in ("k8s/overlays/local", "k8s/overlays/production"):
        for image in images(render(path)):
            name = image.split("@", 1)[0]
            tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
            assert "@" in image or (tag and tag != "latest"), f"{path}: {image}"


def test_the_overlay_digest_is_a_valid_sha256():
    overlay = yaml.safe_load((REPO / PRODUCTION_OVERLAY).read_text())
    (entry,) = [e for e in overlay["images"] if e["name"] == APP_IMAGE]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry["digest"])


# --- the release's pin, on a copy ------------------------------------------------------------


def pin(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PIN), str(tree / PRODUCTION_OVERLAY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    return tmp_path


def render_copy(tree: Path) -> list[Doc]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(tree / "k8s/overlays/production")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_pin_rewrites_only_the_image_lines_and_production_renders_the_new_digest(k8s_copy: Path):
    digest = "sha256:" + "ab12" * 16
    before = (k8s_copy / PRODUCTION_OVERLAY).read_text()
    result = pin(k8s_copy, APP_IMAGE, "ghcr.io/acme/purchase-system", "1.4.0", digest)
    assert result.returncode == 0, result.stderr
    after = (k8s_copy / PRODUCTION_OVERLAY).read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [
        "newName: ghcr.io/acme/purchase-system",
        'newTag: "1.4.0"',
        f"digest: {digest}",
    ]
    rendered = images(render_copy(k8s_copy))
    assert f"ghcr.io/acme/purchase-system:1.4.0@{digest}" in rendered
    assert not {i for i in rendered if "purchase-system" in i and digest not in i}


@pytest.mark.parametrize(
    "args, error",
    [
        ((APP_IMAGE, "ghcr.io/acme/purchase-system", "1.4.0", "sha256:1234"), "not a sha256 digest"),
        ((APP_IMAGE, "ghcr.io/acme/purchase-system", "1.4.0", "latest"), "not a sha256 digest"),
        ((APP_IMAGE, "GHCR.io/Acme/x", "1.4.0", "sha256:" + "0" * 64), "not an image repository"),
        (("no-such-image", "ghcr.io/acme/x", "1.4.0", "sha256:" + "0" * 64), "no images: entry"),
    ],
)
def test_pin_refuses_what_it_cannot_pin_and_leaves_the_file_alone(k8s_copy: Path, args, error):
    before = (k8s_copy / PRODUCTION_OVERLAY).read_text()
    result = pin(k8s_copy, *args)
    assert result.returncode == 1 and error in result.stderr
    assert (k8s_copy / PRODUCTION_OVERLAY).read_text() == before


# --- Argo CD ------------------------------------------------------------------------------------


def argocd_docs() -> list[Doc]:
    return [d for path in sorted(ARGOCD.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def applications() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in argocd_docs() if d["kind"] == "Application"}


def project() -> Doc:
    (found,) = [d for d in argocd_docs() if d["kind"] == "AppProject"]
    return found


def test_one_application_per_overlay():
    paths = {app["spec"]["source"]["path"] for app in applications().values()}
    assert paths == {"k8s/overlays/local", "k8s/overlays/production"}


@pytest.mark.parametrize("name", sorted(applications()))
def test_application_stays_inside_its_project(name: str):
    app, proj = applications()[name], project()
    assert app["apiVersion"] == proj["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["metadata"]["namespace"] == proj["metadata"]["namespace"] == "argocd"
    assert app["spec"]["project"] == proj["metadata"]["name"]
    source, destination = app["spec"]["source"], app["spec"]["destination"]
    assert source["repoURL"] in proj["spec"]["sourceRepos"]
    assert source["targetRevision"] == "main"
    assert destination["namespace"] == NAMESPACE
    assert {"server": destination["server"], "namespace": NAMESPACE} in proj["spec"]["destinations"]
    # Every cluster-scoped object the overlay renders is one the project allows.
    allowed = {(r["group"], r["kind"]) for r in proj["spec"]["clusterResourceWhitelist"]}
    for doc in render(source["path"]):
        if "namespace" not in doc["metadata"]:
            group = doc["apiVersion"].rpartition("/")[0]
            assert (group, doc["kind"]) in allowed, f"{source['path']}: {doc['kind']} is cluster-scoped"


@pytest.mark.parametrize("name", sorted(applications()))
def test_application_syncs_itself_and_heals_drift(name: str):
    automated = applications()[name]["spec"]["syncPolicy"]["automated"]
    assert automated["selfHeal"] is True


@pytest.mark.parametrize("name", sorted(applications()))
def test_nothing_is_pruned_automatically(name: str):
    assert applications()[name]["spec"]["syncPolicy"]["automated"]["prune"] is False


def test_deleting_the_production_application_leaves_the_system_running():
    app = applications()["purchase-system-production"]
    assert "resources-finalizer.argocd.argoproj.io" not in app["metadata"].get("finalizers", [])


@pytest.mark.parametrize("name", sorted(applications()))
def test_automatic_pruning_never_reaches_data(name: str):
    app = applications()[name]
    if not app["spec"]["syncPolicy"]["automated"].get("prune"):
        return
    overlay = app["spec"]["source"]["path"]
    for doc in render(overlay):
        if doc["kind"] in DATA_KINDS:
            options = doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-options", "")
            assert "Prune=false" in options, (
                f"{overlay}: {doc['kind']}/{doc['metadata']['name']} may be pruned"
            )


def wave(doc: Doc) -> int:
    return int(doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


@pytest.mark.parametrize("overlay", ["k8s/overlays/local", "k8s/overlays/production"])
def test_deployments_never_sync_before_the_data_tier_and_secrets(overlay: str):
    docs = render(overlay)
    first = [d for d in docs if d["kind"] in DATA_KINDS | SECRET_KINDS]
    apps = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in APP_DEPLOYMENTS]
    assert apps
    latest_data = max((wave(d) for d in first), default=0)
    for deployment in apps:
        assert wave(deployment) >= latest_data, f"{overlay}: {deployment['metadata']['name']} syncs too early"
