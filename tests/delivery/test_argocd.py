"""Argo CD deploys what git says, in the right order, and never deletes data (k8s/argocd/).

Per environment a root Application creates two: the cluster's share (k8s/cluster/<env>)
in wave -1 and the application (k8s/overlays/<env>) in wave 0. Each stays inside an
AppProject whose whitelists are exactly the kinds its folders render. Inside the
application, the overlays' sync waves put Secrets and the data tier before the
Deployments, and what holds data is never pruned or deleted by a sync. Offline.
"""

from __future__ import annotations

import pytest

from tests.k8s.manifests import APP_DEPLOYMENTS, CUSTOM_GROUPS, NAMESPACE, Doc, render

from .argocd import (
    ARGOCD,
    ENVIRONMENTS,
    SYNC_OPTIONS,
    annotations,
    application_for,
    applications,
    deployed,
    group_kind,
    health_checks,
    is_cluster_scoped,
    load,
    projects,
    sync_options,
    wave,
)

FINALIZER = "resources-finalizer.argocd.argoproj.io"
NEVER_PRUNED = "Prune=false,Delete=false"
# Kinds that hold data: a sync never prunes or deletes them.
DATA_KINDS = {
    "PersistentVolumeClaim",
    "StatefulSet",
    "Kafka",
    "KafkaNodePool",
    "KafkaTopic",
    "PerconaServerMongoDB",
}
SECRET_KINDS = {"Secret", "ExternalSecret", "SealedSecret"}
# Kinds the waves wait on that have no readiness of their own: a KafkaNodePool's brokers and
# controllers are part of its Kafka's Ready condition.
READY_THROUGH_ANOTHER = {("kafka.strimzi.io", "KafkaNodePool")}


def whitelist(project: Doc, key: str) -> set[tuple[str, str]]:
    return {(r["group"], r["kind"]) for r in project["spec"].get(key) or []}


def cluster_apps() -> list[Doc]:
    return [application_for(f"k8s/cluster/{env}") for env in ENVIRONMENTS]


# --- the Applications and their order ----------------------------------------------------------


def test_an_application_per_overlay_and_per_cluster_share_and_a_root_per_environment():
    paths = {app["spec"]["source"]["path"] for app in applications().values()}
    assert paths == {
        f"k8s/{folder}/{env}" for folder in ("overlays", "cluster", "argocd") for env in ENVIRONMENTS
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_root_creates_the_cluster_share_before_the_application(env: str):
    root = application_for(f"k8s/argocd/{env}")
    assert {d["metadata"]["name"] for d in load(ARGOCD / f"{env}.yaml")} == {root["metadata"]["name"]}
    children = {d["spec"]["source"]["path"]: d for d in deployed(root)}
    assert set(children) == {f"k8s/cluster/{env}", f"k8s/overlays/{env}"}
    assert all(d["kind"] == "Application" for d in children.values())
    assert wave(children[f"k8s/cluster/{env}"]) < wave(children[f"k8s/overlays/{env}"])
    # Argo CD waits on a child Application's health only with a check for Applications.
    assert "argoproj.io_Application" in health_checks()


@pytest.mark.parametrize("name", sorted(applications()))
def test_application_stays_inside_its_project(name: str):
    app = applications()[name]
    project = projects()[app["spec"]["project"]]
    assert app["apiVersion"] == project["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["metadata"]["namespace"] == project["metadata"]["namespace"] == "argocd"
    source, destination = app["spec"]["source"], app["spec"]["destination"]
    assert source["repoURL"] in project["spec"]["sourceRepos"]
    assert source["targetRevision"] == "main"
    allowed_namespaces = {
        d["namespace"] for d in project["spec"]["destinations"] if d["server"] == destination["server"]
    }
    assert destination["namespace"] in allowed_namespaces
    cluster_kinds = whitelist(project, "clusterResourceWhitelist")
    namespaced_kinds = whitelist(project, "namespaceResourceWhitelist")
    for doc in deployed(app):
        what = f"{source['path']}: {doc['kind']}/{doc['metadata']['name']}"
        if is_cluster_scoped(doc):
            assert group_kind(doc) in cluster_kinds, f"{what} is cluster-scoped and not whitelisted"
        else:
            assert group_kind(doc) in namespaced_kinds, f"{what} is not whitelisted"
            assert doc["metadata"].get("namespace", destination["namespace"]) in allowed_namespaces, what


@pytest.mark.parametrize("project", ["purchase-system", "purchase-system-cluster", "purchase-system-root"])
def test_each_project_whitelists_exactly_what_its_applications_deploy(project: str):
    apps = [a for a in applications().values() if a["spec"]["project"] == project]
    assert apps
    docs = [d for app in apps for d in deployed(app)]
    spec = projects()[project]
    assert whitelist(spec, "clusterResourceWhitelist") == {
        group_kind(d) for d in docs if is_cluster_scoped(d)
    }
    assert whitelist(spec, "namespaceResourceWhitelist") == {
        group_kind(d) for d in docs if not is_cluster_scoped(d)
    }


def test_the_application_deploys_nothing_cluster_scoped_and_only_to_its_namespace():
    project = projects()["purchase-system"]
    assert project["spec"]["clusterResourceWhitelist"] == []
    assert project["spec"]["destinations"] == [
        {"server": "https://kubernetes.default.svc", "namespace": NAMESPACE}
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cluster_scope_is_read_right_from_the_cluster_share(env: str):
    # k8s/cluster has no namespace transformer: an object without a namespace is cluster-scoped.
    for doc in render(f"k8s/cluster/{env}"):
        assert is_cluster_scoped(doc) == ("namespace" not in doc["metadata"]), doc["kind"]


# --- self-heal, pruning, deletion ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(applications()))
def test_application_syncs_itself_and_heals_drift(name: str):
    automated = applications()[name]["spec"]["syncPolicy"]["automated"]
    assert automated["selfHeal"] is True


@pytest.mark.parametrize("name", sorted(applications()))
def test_nothing_is_pruned_automatically(name: str):
    assert applications()[name]["spec"]["syncPolicy"]["automated"]["prune"] is False


def test_only_the_local_application_deletes_what_it_deployed_when_deleted():
    with_finalizer = {
        n for n, a in applications().items() if FINALIZER in a["metadata"].get("finalizers", [])
    }
    assert with_finalizer == {application_for("k8s/overlays/local")["metadata"]["name"]}


@pytest.mark.parametrize("app", cluster_apps(), ids=lambda a: a["metadata"]["name"])
def test_the_cluster_share_is_never_pruned_or_deleted(app: Doc):
    assert app["spec"]["source"]["kustomize"]["commonAnnotations"] == {SYNC_OPTIONS: NEVER_PRUNED}
    plain = render(app["spec"]["source"]["path"])
    # The Application's annotation replaces none that says something else.
    assert all(annotations(d).get(SYNC_OPTIONS, NEVER_PRUNED) == NEVER_PRUNED for d in plain)
    docs = deployed(app)
    assert len(docs) == len(plain)
    for doc in docs:
        assert sync_options(doc) >= {"Prune=false", "Delete=false"}, doc["kind"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_sync_never_prunes_or_deletes_data(env: str):
    docs = deployed(application_for(f"k8s/overlays/{env}"))
    data = [d for d in docs if d["kind"] in DATA_KINDS]
    assert {d["kind"] for d in data} >= {"Kafka", "KafkaNodePool", "KafkaTopic", "PerconaServerMongoDB"}
    for doc in data:
        assert sync_options(doc) >= {"Prune=false", "Delete=false"}, (
            f"{env}: {doc['kind']}/{doc['metadata']['name']}"
        )


# --- waves inside the application, and what they wait on ------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deployments_never_sync_before_the_data_tier_and_secrets(env: str):
    docs = deployed(application_for(f"k8s/overlays/{env}"))
    data = [d for d in docs if d["kind"] in DATA_KINDS]
    secrets = [d for d in docs if d["kind"] in SECRET_KINDS]
    apps = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in APP_DEPLOYMENTS]
    assert len(apps) == len(APP_DEPLOYMENTS) and data and secrets
    for deployment in apps:
        name = deployment["metadata"]["name"]
        # A later wave than the data tier; a Secret may share the Deployments' wave, where
        # Argo CD applies Secrets before workloads.
        assert wave(deployment) > max(wave(d) for d in data), f"{env}: {name} syncs with the data tier"
        assert wave(deployment) >= max(wave(d) for d in secrets), f"{env}: {name} syncs before a Secret"


def test_the_operators_get_their_secrets_before_the_data_tier():
    docs = deployed(application_for("k8s/overlays/production"))
    external = [d for d in docs if d["kind"] == "ExternalSecret"]
    assert external
    first_data = min(wave(d) for d in docs if d["kind"] in DATA_KINDS)
    assert max(wave(d) for d in external) < first_data


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_kind_the_deployments_wait_on_has_a_health_check(env: str):
    docs = deployed(application_for(f"k8s/overlays/{env}"))
    last = max(wave(d) for d in docs)
    waited_on = {
        group_kind(d) for d in docs if wave(d) < last and d["apiVersion"].split("/")[0] in CUSTOM_GROUPS
    }
    assert waited_on
    checked = {tuple(key.split("_", 1)) for key in health_checks()}
    assert waited_on - READY_THROUGH_ANOTHER <= checked, waited_on - checked


def test_every_health_check_is_for_a_kind_something_deploys():
    kinds = {group_kind(d) for app in applications().values() for d in deployed(app)} | {
        ("argoproj.io", "Application")
    }
    checked = {tuple(key.split("_", 1)) for key in health_checks()}
    assert checked <= kinds, checked - kinds
