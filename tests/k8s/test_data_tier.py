"""The data tier as the operators run it (contract, "Kubernetes"), checked on the renders.

Kafka (Strimzi): KRaft node pools, replication that survives a broker, TLS + SCRAM on
every client listener, ACLs per client, topics as KafkaTopics. MongoDB (Percona): a
replica set over zones, TLS required, a user per client, point-in-time backups off the
cluster. Clients: each speaks that way (SASL_SSL, its own user, the CAs mounted). Secrets:
every credential from the store in production, the development Secrets only in the local
overlay. Storage, ownership and GitOps: named StorageClasses that keep the disk, the
Namespace outside the application, sync waves and no pruning of what holds data.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .manifests import (
    LOCAL,
    PRODUCTION,
    REPO,
    Doc,
    app_config,
    containers,
    find,
    is_custom,
    label_selector_matches,
    one,
    pod_labels,
    pod_spec,
    workloads,
)

KAFKA_CLIENTS = {"storefront": "Deployment", "purchase-consumer": "Deployment", "replay-dlq": "CronJob"}
MONGODB_CLIENTS = {"ledger": "mongodb-user-ledger", "purchase-consumer": "mongodb-user-consumer"}
# What each KafkaUser may do: (resource type, name) -> operations (contract, "Kubernetes").
ACLS = {
    "storefront": {
        ("topic", "purchases"): {"Write", "Describe"},
        ("cluster", None): {"IdempotentWrite"},
    },
    "purchase-consumer": {
        ("topic", "purchases"): {"Read", "Describe"},
        ("group", "purchase-consumer-group"): {"Read"},
        ("topic", "purchases.dlq"): {"Write", "Describe"},
        ("cluster", None): {"IdempotentWrite"},
    },
    "replay-dlq": {
        ("topic", "purchases.dlq"): {"Read", "Describe"},
        ("group", "purchase-dlq-replay"): {"Read"},
        ("topic", "purchases"): {"Write", "Describe"},
        ("cluster", None): {"IdempotentWrite"},
    },
}
# Secrets the operators write themselves: (name, key).
OPERATOR_SECRETS = {("kafka-cluster-ca-cert", "ca.crt"), ("mongodb-ssl", "ca.crt")}


def _env(container: Doc) -> dict[str, Doc]:
    return {v["name"]: v for v in container.get("env", [])}


def _client(docs: list[Doc], name: str) -> Doc:
    return one(docs, KAFKA_CLIENTS.get(name, "Deployment"), name)


def _pools(docs: list[Doc], role: str) -> int:
    return sum(p["spec"]["replicas"] for p in find(docs, "KafkaNodePool") if role in p["spec"]["roles"])


# --- Kafka ------------------------------------------------------------------------------


def test_production_kafka_survives_a_broker_and_a_zone(rendered) -> None:
    docs = rendered[PRODUCTION]
    kafka = one(docs, "Kafka", "kafka")["spec"]["kafka"]
    assert _pools(docs, "broker") == 3
    # A KRaft quorum of its own: three controllers, apart from the brokers.
    assert _pools(docs, "controller") == 3
    assert all(len(p["spec"]["roles"]) == 1 for p in find(docs, "KafkaNodePool"))
    config = kafka["config"]
    assert config["auto.create.topics.enable"] is False
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == (3, 2)
    for topic in find(docs, "KafkaTopic"):
        assert topic["spec"]["replicas"] == 3, topic["metadata"]["name"]
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
    # Replicas of a partition in different zones; one broker per zone or not scheduled.
    assert kafka["rack"] == {"topologyKey": "topology.kubernetes.io/zone"}
    brokers = one(docs, "KafkaNodePool", "brokers")
    spread = {
        c["topologyKey"]: c["whenUnsatisfiable"]
        for c in brokers["spec"]["template"]["pod"]["topologySpreadConstraints"]
    }
    assert spread == {
        "topology.kubernetes.io/zone": "DoNotSchedule",
        "kubernetes.io/hostname": "DoNotSchedule",
    }


def test_production_drains_never_drop_below_min_insync_replicas(rendered) -> None:
    # No eviction of a broker by Kubernetes; Strimzi Drain Cleaner (installed with the
    # operators in production) hands each one to the operator, which rolls a broker only
    # when every partition keeps min.insync.replicas (Strimzi's documented setup).
    kafka = one(rendered[PRODUCTION], "Kafka", "kafka")["spec"]["kafka"]
    assert kafka["template"]["podDisruptionBudget"] == {"maxUnavailable": 0}
    install = (REPO / "k8s/operators/install.sh").read_text()
    assert "oci://quay.io/strimzi-helm/strimzi-drain-cleaner" in install
    assert kafka["config"]["min.insync.replicas"] < kafka["config"]["default.replication.factor"]


def test_local_kafka_is_one_node_with_the_same_users_and_acls(rendered) -> None:
    docs = rendered[LOCAL]
    [pool] = find(docs, "KafkaNodePool")
    assert pool["spec"]["replicas"] == 1 and sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["storage"]["kraftMetadata"] == "shared"
    kafka = one(docs, "Kafka", "kafka")["spec"]["kafka"]
    assert kafka["config"]["default.replication.factor"] == 1
    assert kafka["template"]["podDisruptionBudget"]["maxUnavailable"] == 1
    production = rendered[PRODUCTION]
    for user in find(production, "KafkaUser"):
        assert one(docs, "KafkaUser", user["metadata"]["name"])["spec"] == user["spec"]


def test_every_listener_authenticates_and_authorization_is_on(docs: list[Doc]) -> None:
    kafka = one(docs, "Kafka", "kafka")["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    assert "superUsers" not in kafka["authorization"]
    for listener in kafka["listeners"]:
        assert listener["authentication"]["type"] == "scram-sha-512", listener["name"]


def test_production_listeners_are_tls(rendered) -> None:
    [listener] = one(rendered[PRODUCTION], "Kafka", "kafka")["spec"]["kafka"]["listeners"]
    assert (listener["name"], listener["port"], listener["tls"]) == ("tls", 9093, True)
    config = app_config(rendered[PRODUCTION])
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-kafka-bootstrap:9093"
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


def test_topics_are_kafka_topics_with_the_contract_partitions(docs: list[Doc]) -> None:
    config = app_config(docs)
    topics = {t["spec"]["topicName"]: t["spec"] for t in find(docs, "KafkaTopic")}
    assert set(topics) == {config["KAFKA_TOPIC"], config["KAFKA_DLQ_TOPIC"]}
    assert topics[config["KAFKA_TOPIC"]]["partitions"] == int(config["KAFKA_TOPIC_PARTITIONS"])
    # Dead letters wait 90 days for someone to fix and replay them.
    assert topics[config["KAFKA_DLQ_TOPIC"]]["config"]["retention.ms"] == 90 * 24 * 3600 * 1000
    for topic in find(docs, "KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "kafka"


def test_each_kafka_user_may_do_only_its_job(docs: list[Doc]) -> None:
    users = {u["metadata"]["name"]: u["spec"] for u in find(docs, "KafkaUser")}
    assert set(users) == set(ACLS)
    config = app_config(docs)
    assert config["KAFKA_CONSUMER_GROUP"] in {
        name for (kind, name) in ACLS["purchase-consumer"] if kind == "group"
    }
    for name, spec in users.items():
        assert spec["authentication"] == {"type": "scram-sha-512"}
        granted: dict = {}
        for acl in spec["authorization"]["acls"]:
            assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*"
            resource = acl["resource"]
            assert resource.get("patternType", "literal") == "literal", "no prefixes or wildcards"
            granted.setdefault((resource["type"], resource.get("name")), set()).update(acl["operations"])
        assert granted == ACLS[name], name
    # The storefront may only write `purchases` (contract): nothing it could read or alter.
    assert not {"Read", "Delete", "Alter", "AlterConfigs", "All", "Create"} & set().union(
        *ACLS["storefront"].values()
    )


def test_each_kafka_client_logs_in_as_its_own_user_over_the_cluster_ca(docs: list[Doc]) -> None:
    config = app_config(docs)
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    ca_location = config["KAFKA_SSL_CA_LOCATION"]
    for name in KAFKA_CLIENTS:
        workload = _client(docs, name)
        container = containers(workload, init=False)[0]
        env = _env(container)
        assert env["KAFKA_SASL_USERNAME"]["value"] == name
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "password"}
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == "kafka-cluster-ca-cert"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        if ca_location:
            assert str(Path(mounts["kafka-ca"]) / "ca.crt") == ca_location
    # The ledger does not speak Kafka at all.
    ledger = containers(one(docs, "Deployment", "ledger"), init=False)[0]
    assert not [name for name in _env(ledger) if name.startswith("KAFKA_SASL")]


def test_local_overlay_is_plaintext_with_the_same_users(rendered) -> None:
    config = app_config(rendered[LOCAL])
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-kafka-bootstrap:9092"
    assert config["KAFKA_SSL_CA_LOCATION"] == ""
    [listener] = one(rendered[LOCAL], "Kafka", "kafka")["spec"]["kafka"]["listeners"]
    assert (listener["port"], listener["tls"]) == (9092, False)


# --- MongoDB ----------------------------------------------------------------------------


def test_production_mongodb_is_a_tls_replica_set_over_zones(rendered) -> None:
    spec = one(rendered[PRODUCTION], "PerconaServerMongoDB", "mongodb")["spec"]
    assert spec["tls"]["mode"] == "requireTLS"
    assert "unsafeFlags" not in spec
    [rs] = spec["replsets"]
    assert (rs["name"], rs["size"]) == ("rs0", 3)
    assert rs["affinity"]["antiAffinityTopologyKey"] == "topology.kubernetes.io/zone"
    assert rs["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert rs["volumeSpec"]["persistentVolumeClaim"]["storageClassName"] == "purchase-mongodb"
    assert spec["sharding"] == {"enabled": False}


def test_production_backups_reach_object_storage_with_point_in_time_recovery(rendered) -> None:
    backup = one(rendered[PRODUCTION], "PerconaServerMongoDB", "mongodb")["spec"]["backup"]
    assert backup["enabled"] is True
    assert backup["pitr"]["enabled"] is True and backup["pitr"]["oplogSpanMin"] <= 15
    storages = backup["storages"]
    [task] = backup["tasks"]
    assert task["enabled"] is True and task["schedule"]
    storage = storages[task["storageName"]]
    assert storage["type"] == "s3" and storage["main"] is True
    assert not storage["s3"]["bucket"].startswith("CHANGE-ME")
    assert task["retention"]["count"] >= 7 and task["retention"]["deleteFromStorage"] is True
    # The bucket's credentials come from the store.
    external = one(rendered[PRODUCTION], "ExternalSecret", storage["s3"]["credentialsSecret"])
    assert {d["secretKey"] for d in external["spec"]["data"]} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }


def test_local_mongodb_is_one_member_without_tls_or_backups(rendered) -> None:
    spec = one(rendered[LOCAL], "PerconaServerMongoDB", "mongodb")["spec"]
    assert spec["replsets"][0]["size"] == 1
    assert spec["tls"]["mode"] == "disabled"
    assert spec["unsafeFlags"] == {"replsetSize": True, "tls": True}
    assert spec["backup"]["enabled"] is False


def test_one_mongodb_user_per_client_and_the_ledger_only_reads(docs: list[Doc]) -> None:
    spec = one(docs, "PerconaServerMongoDB", "mongodb")["spec"]
    database = app_config(docs)["MONGODB_DATABASE"]
    users = {u["passwordSecretRef"]["name"]: u for u in spec["users"]}
    assert set(users) == set(MONGODB_CLIENTS.values())
    assert users["mongodb-user-consumer"]["roles"] == [{"name": "readWrite", "db": database}]
    [ledger_role] = users["mongodb-user-ledger"]["roles"]
    [role] = [r for r in spec["roles"] if r["role"] == ledger_role["name"] and r["db"] == ledger_role["db"]]
    assert role["roles"] == [{"role": "read", "db": database}]
    # Besides reading: creating the indexes it reads with (ensure_indexes), nothing else.
    assert role["privileges"] == [
        {"resource": {"db": database, "collection": ""}, "actions": ["createIndex"]}
    ]
    for name, secret in MONGODB_CLIENTS.items():
        for container in containers(one(docs, "Deployment", name)):
            assert _env(container)["MONGODB_URI"]["valueFrom"]["secretKeyRef"] == {
                "name": secret,
                "key": "MONGODB_URI",
            }
        volumes = {v["name"]: v for v in pod_spec(one(docs, "Deployment", name))["volumes"]}
        assert volumes["mongodb-ca"]["secret"]["secretName"] == "mongodb-ssl"


def _uri_templates(docs: list[Doc]) -> dict[str, str]:
    out = {}
    for external in find(docs, "ExternalSecret"):
        data = external["spec"]["target"].get("template", {}).get("data", {})
        if "MONGODB_URI" in data:
            out[external["spec"]["target"]["name"]] = data["MONGODB_URI"]
    for secret in find(docs, "Secret"):
        if "MONGODB_URI" in secret.get("stringData", {}):
            out[secret["metadata"]["name"]] = secret["stringData"]["MONGODB_URI"]
    return out


def test_each_mongodb_uri_logs_in_as_its_user_over_tls_in_production(rendered) -> None:
    for path, docs in rendered.items():
        spec = one(docs, "PerconaServerMongoDB", "mongodb")["spec"]
        users = {u["passwordSecretRef"]["name"]: u["name"] for u in spec["users"]}
        uris = _uri_templates(docs)
        assert set(uris) == set(MONGODB_CLIENTS.values()), path
        members = spec["replsets"][0]["size"]
        for secret, uri in uris.items():
            assert uri.startswith(f"mongodb://{users[secret]}:"), uri
            hosts = re.search(r"@([^/]+)/", uri).group(1).split(",")
            assert hosts == [
                f"mongodb-rs0-{i}.mongodb-rs0.purchase-system.svc.cluster.local:27017" for i in range(members)
            ]
            assert "replicaSet=rs0" in uri and "authSource=admin" in uri
            if path == PRODUCTION:
                assert "tls=true" in uri and "tlsCAFile=/etc/purchases/mongodb-ca/ca.crt" in uri
                assert "{{ .password | urlquery }}" in uri


# --- Secrets ----------------------------------------------------------------------------


def _provided(docs: list[Doc]) -> dict[str, set[str] | None]:
    """Secret name -> its keys (None: all keys of a store entry, not listed here)."""
    out: dict[str, set[str] | None] = {}
    for secret in find(docs, "Secret"):
        out[secret["metadata"]["name"]] = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for external in find(docs, "ExternalSecret"):
        spec = external["spec"]
        keys = {d["secretKey"] for d in spec.get("data", [])} | set(
            spec["target"].get("template", {}).get("data", {})
        )
        out[spec["target"]["name"]] = None if spec.get("dataFrom") else keys
    for user in find(docs, "KafkaUser"):
        out[user["metadata"]["name"]] = {"password"}
    for name, key in OPERATOR_SECRETS:
        out.setdefault(name, set()).add(key)  # type: ignore[union-attr]
    return out


def test_every_referenced_secret_is_provided(docs: list[Doc]) -> None:
    provided = _provided(docs)
    refs: list[tuple[str, str, bool]] = []
    for workload in workloads(docs):
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                refs += [(volume["secret"]["secretName"], i["key"], False) for i in volume["secret"]["items"]]
        for container in containers(workload):
            assert not any("secretRef" in e for e in container.get("envFrom", []))
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.append((ref["name"], ref["key"], ref.get("optional", False)))
    mongodb = one(docs, "PerconaServerMongoDB", "mongodb")["spec"]
    refs += [(u["passwordSecretRef"]["name"], u["passwordSecretRef"]["key"], False) for u in mongodb["users"]]
    for name, key, optional in refs:
        assert name in provided, f"nothing provides the Secret {name}"
        keys = provided[name]
        assert keys is None or key in keys or optional, f"Secret {name} has no key {key}"


def test_production_render_has_no_literal_secret(rendered) -> None:
    docs = rendered[PRODUCTION]
    assert find(docs, "Secret") == []
    store = {"kind": "ClusterSecretStore", "name": "purchase-system"}
    for external in find(docs, "ExternalSecret"):
        assert external["spec"]["secretStoreRef"] == store
        assert external["spec"]["target"]["deletionPolicy"] == "Retain"
    # Every credential the pods use is from the store or made by an operator.
    backup = one(docs, "PerconaServerMongoDB", "mongodb")["spec"]
    targets = {e["spec"]["target"]["name"] for e in find(docs, "ExternalSecret")}
    assert targets == {
        "purchase-system-secrets",
        *MONGODB_CLIENTS.values(),
        backup["secrets"]["users"],
        "mongodb-backup-s3",
    }


def test_the_development_secrets_exist_only_in_the_local_overlay(rendered) -> None:
    local = find(rendered[LOCAL], "Secret")
    assert local and all(
        s["metadata"]["labels"]["purchase-system/environment"] == "development" for s in local
    )
    assert find(rendered[LOCAL], "ExternalSecret") == []
    # Only the local overlay names the file.
    naming = [
        p
        for p in (REPO / "k8s").rglob("kustomization.yaml")
        if re.search(r"^\s*- secrets\.yaml$", p.read_text(), re.M)
    ]
    assert naming == [REPO / LOCAL / "kustomization.yaml"]


def test_the_store_keys_are_documented(rendered) -> None:
    guide = (REPO / "docs/deploy-kubernetes.md").read_text()
    for external in find(rendered[PRODUCTION], "ExternalSecret"):
        spec = external["spec"]
        for key in [d["remoteRef"]["key"] for d in spec.get("data", [])] + [
            d["extract"]["key"] for d in spec.get("dataFrom", [])
        ]:
            assert f"`{key}`" in guide, key
    for key in ("DJANGO_SECRET_KEY", "IDEMPOTENCY_SECRET", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"):
        assert key in guide


# --- storage, ownership, GitOps ------------------------------------------------------------


def test_every_volume_names_a_storage_class_that_keeps_the_disk(rendered, cluster_rendered) -> None:
    for env in ("local", "production"):
        docs = rendered[f"k8s/overlays/{env}"]
        classes = {
            c["metadata"]["name"]: c for c in find(cluster_rendered[f"k8s/cluster/{env}"], "StorageClass")
        }
        named = [p["spec"]["storage"] for p in find(docs, "KafkaNodePool")]
        used = {s["class"] for s in named}
        assert all(s["type"] == "persistent-claim" and s["deleteClaim"] is False for s in named)
        pvc = one(docs, "PerconaServerMongoDB", "mongodb")["spec"]["replsets"][0]["volumeSpec"][
            "persistentVolumeClaim"
        ]
        used.add(pvc["storageClassName"])
        assert used == set(classes), env
        for storage_class in classes.values():
            assert storage_class["reclaimPolicy"] == "Retain"
            assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"


def test_the_namespace_is_outside_the_application(rendered, cluster_rendered) -> None:
    for docs in rendered.values():
        assert find(docs, "Namespace") == []
    for docs in cluster_rendered.values():
        namespace = one(docs, "Namespace", "purchase-system")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert "Prune=false" in namespace["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]


DATA_HOLDERS = {"Kafka", "KafkaNodePool", "KafkaTopic", "PerconaServerMongoDB"}


@pytest.mark.parametrize("path", [LOCAL, PRODUCTION])
def test_sync_waves_put_the_data_tier_and_secrets_first(rendered, path: str) -> None:
    def wave(doc: Doc) -> int:
        return int(doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))

    docs = rendered[path]
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "ExternalSecret":
            assert wave(doc) <= -2, where
        elif doc["kind"] in DATA_HOLDERS | {"KafkaUser", "Certificate"}:
            assert wave(doc) == -1, where
        elif doc["kind"] in {"Deployment", "CronJob"}:
            assert wave(doc) == 0, where
        if doc["kind"] in DATA_HOLDERS:
            assert "Prune=false" in doc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"], where
    assert [d for d in docs if is_custom(d) and d["kind"] in DATA_HOLDERS]


def test_the_database_pods_fit_the_restricted_pod_security(docs: list[Doc]) -> None:
    # The namespace enforces the restricted standard: the operator's pods must fit it too
    # (Strimzi's fit through its Restricted provider, test_custom_resources.py).
    spec = one(docs, "PerconaServerMongoDB", "mongodb")["spec"]
    [rs] = spec["replsets"]
    pod = rs["podSecurityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for context in (rs["containerSecurityContext"], spec["backup"]["containerSecurityContext"]):
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
    assert spec["initContainerSecurityContext"]["allowPrivilegeEscalation"] is False
    assert spec["logcollector"] == {"enabled": False}


def test_the_restore_templates_name_this_cluster_and_its_storage(rendered) -> None:
    spec = one(rendered[PRODUCTION], "PerconaServerMongoDB", "mongodb")["spec"]
    backup, restore = yaml.safe_load_all((REPO / "k8s/runbooks/mongodb-restore.yaml").read_text())
    assert backup["spec"]["clusterName"] == restore["spec"]["clusterName"] == "mongodb"
    assert backup["spec"]["storageName"] in spec["backup"]["storages"]
    # Point in time: the snapshot before the date, then the oplog up to it.
    assert restore["spec"]["pitr"]["type"] == "date"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", restore["spec"]["pitr"]["date"])
    runbook = (REPO / "docs/kubernetes-runbooks.md").read_text()
    assert (
        "k8s/runbooks/mongodb-restore.yaml" in runbook
        and "PerconaServerMongoDBRestore"
        in (REPO / "docs/decisions/0020-data-tier-by-operators.md").read_text()
    )


def test_the_kafka_listener_admits_the_clients_pods_on_the_configured_port(docs: list[Doc]) -> None:
    [listener] = one(docs, "Kafka", "kafka")["spec"]["kafka"]["listeners"]
    bootstrap = app_config(docs)["KAFKA_BOOTSTRAP_SERVERS"]
    assert bootstrap == f"kafka-kafka-bootstrap:{listener['port']}"
    for name in KAFKA_CLIENTS:
        labels = pod_labels(_client(docs, name))
        assert any(
            label_selector_matches(p["podSelector"], labels) for p in listener["networkPolicyPeers"]
        ), name
    # TLS on the listener exactly when the clients speak it.
    assert listener["tls"] == (app_config(docs)["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL")
