"""Argo CD's health checks of k8s/argocd/argocd-cm-health.yaml, run on sample objects.

Each script runs in Lua 5.1 (lupa), the language version of Argo CD's gopher-lua, with the
object as the global `obj`, as Argo CD runs it. The objects are the ones the overlays render,
with the status their operator writes: the waves move on only when it says ready.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from lupa import lua51

from tests.k8s.manifests import Doc, one

from .argocd import application_for, deployed, health_checks

# What Argo CD accepts from a health script.
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
READY_CONDITION_KINDS = [
    "kafka.strimzi.io_Kafka",
    "kafka.strimzi.io_KafkaTopic",
    "kafka.strimzi.io_KafkaUser",
    "external-secrets.io_ExternalSecret",
    "cert-manager.io_Certificate",
]


def health(key: str, obj: Doc) -> dict[str, Any]:
    lua = lua51.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = dict(lua.execute(health_checks()[key]))
    assert result["status"] in STATUSES, result
    assert isinstance(result.get("message", ""), str), result
    return result


def production(kind: str, name: str, *, generation: int = 3, status: Doc | None = None) -> Doc:
    doc = copy.deepcopy(one(deployed(application_for("k8s/overlays/production")), kind, name))
    doc["metadata"]["generation"] = generation
    if status is not None:
        doc["status"] = status
    return doc


def condition(type_: str, status: str, reason: str = "", message: str = "") -> Doc:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_the_conditions_script_is_one_for_every_kind_that_reports_ready():
    scripts = {health_checks()[key] for key in READY_CONDITION_KINDS}
    assert len(scripts) == 1


# --- Strimzi: Kafka (the same script for KafkaTopic and KafkaUser) ----------------------------


def test_kafka_without_status_is_progressing():
    assert health("kafka.strimzi.io_Kafka", production("Kafka", "kafka"))["status"] == "Progressing"


def test_kafka_being_created_is_progressing():
    status = {"observedGeneration": 3, "conditions": [condition("NotReady", "True", "Creating", "deploying")]}
    result = health("kafka.strimzi.io_Kafka", production("Kafka", "kafka", status=status))
    assert result == {"status": "Progressing", "message": "deploying"}


def test_kafka_ready_is_healthy_next_to_a_warning():
    conditions = [condition("Warning", "True", "KafkaStorage", "deprecated"), condition("Ready", "True")]
    status = {"observedGeneration": 3, "conditions": conditions}
    assert (
        health("kafka.strimzi.io_Kafka", production("Kafka", "kafka", status=status))["status"] == "Healthy"
    )


def test_kafka_ready_for_an_older_spec_is_still_progressing():
    status = {"observedGeneration": 2, "conditions": [condition("Ready", "True")]}
    result = health("kafka.strimzi.io_Kafka", production("Kafka", "kafka", status=status))
    assert result["status"] == "Progressing" and "latest spec" in result["message"]


def test_kafka_failing_is_degraded_with_the_operators_message():
    failing = condition(
        "NotReady", "True", "InvalidResourceException", "Unsupported Kafka.spec.kafka.version"
    )
    status = {"observedGeneration": 3, "conditions": [failing]}
    result = health("kafka.strimzi.io_Kafka", production("Kafka", "kafka", status=status))
    assert result == {"status": "Degraded", "message": "Unsupported Kafka.spec.kafka.version"}


@pytest.mark.parametrize("kind, name", [("KafkaTopic", "purchases"), ("KafkaUser", "storefront")])
def test_topics_and_users_are_healthy_only_when_ready(kind: str, name: str):
    key = f"kafka.strimzi.io_{kind}"
    ready = {"observedGeneration": 3, "conditions": [condition("Ready", "True")]}
    failing = {
        "observedGeneration": 3,
        "conditions": [condition("NotReady", "True", "KafkaError", "no ACLs")],
    }
    assert health(key, production(kind, name))["status"] == "Progressing"
    assert health(key, production(kind, name, status=ready))["status"] == "Healthy"
    assert health(key, production(kind, name, status=failing))["status"] == "Degraded"


def test_an_object_being_deleted_is_progressing():
    doc = production(
        "Kafka", "kafka", status={"observedGeneration": 3, "conditions": [condition("Ready", "True")]}
    )
    doc["metadata"]["deletionTimestamp"] = "2026-12-01T14:30:00Z"
    assert health("kafka.strimzi.io_Kafka", doc)["status"] == "Progressing"


# --- External Secrets, cert-manager ------------------------------------------------------------


def test_an_external_secret_is_healthy_once_synced():
    key, name = "external-secrets.io_ExternalSecret", "mongodb-system-users"
    synced = {"conditions": [condition("Ready", "True", "SecretSynced", "secret synced")]}
    assert health(key, production("ExternalSecret", name))["status"] == "Progressing"
    assert health(key, production("ExternalSecret", name, status=synced))["status"] == "Healthy"


def test_an_external_secret_the_store_refuses_is_degraded():
    refused = {"conditions": [condition("Ready", "False", "SecretSyncedError", "could not get secret data")]}
    result = health(
        "external-secrets.io_ExternalSecret",
        production("ExternalSecret", "mongodb-user-ledger", status=refused),
    )
    assert result == {"status": "Degraded", "message": "could not get secret data"}


def test_a_certificate_is_progressing_while_issuing_and_degraded_when_it_fails():
    key, name = "cert-manager.io_Certificate", "purchases-example-com"
    issuing = [condition("Ready", "False", "DoesNotExist"), condition("Issuing", "True", "Requested")]
    failed = [condition("Ready", "False", "Failed", "ACME order failed")]
    assert (
        health(key, production("Certificate", name, status={"conditions": issuing}))["status"]
        == "Progressing"
    )
    assert health(key, production("Certificate", name, status={"conditions": failed}))["status"] == "Degraded"
    ready = {"conditions": [condition("Ready", "True", "Ready")]}
    assert health(key, production("Certificate", name, status=ready))["status"] == "Healthy"


# --- Percona: PerconaServerMongoDB --------------------------------------------------------------


@pytest.mark.parametrize(
    "state, expected",
    [
        (None, "Progressing"),
        ("", "Progressing"),
        ("initializing", "Progressing"),
        ("stopping", "Progressing"),
        ("ready", "Healthy"),
        ("error", "Degraded"),
        ("paused", "Suspended"),
    ],
)
def test_mongodb_health_follows_the_operators_state(state: str | None, expected: str):
    status = (
        None
        if state is None
        else {"observedGeneration": 3, "state": state, "message": "replset rs0: not ready"}
    )
    result = health(
        "psmdb.percona.com_PerconaServerMongoDB", production("PerconaServerMongoDB", "mongodb", status=status)
    )
    assert result["status"] == expected


def test_mongodb_ready_for_an_older_spec_is_still_progressing():
    status = {"observedGeneration": 2, "state": "ready"}
    result = health(
        "psmdb.percona.com_PerconaServerMongoDB", production("PerconaServerMongoDB", "mongodb", status=status)
    )
    assert result["status"] == "Progressing"


# --- Applications (the root's waves) -------------------------------------------------------------


def test_an_application_reports_its_own_health():
    app = copy.deepcopy(application_for("k8s/cluster/production"))
    assert health("argoproj.io_Application", app)["status"] == "Progressing"
    for status in ("Missing", "Progressing", "Degraded", "Healthy"):
        app["status"] = {"health": {"status": status}, "sync": {"status": "Synced"}}
        assert health("argoproj.io_Application", app)["status"] == status
