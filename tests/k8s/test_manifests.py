"""Checks over the rendered Kubernetes manifests (k8s/) that schema validation cannot do.

Rendering and the helpers are in manifests.py, the fixtures in conftest.py. The checks of
what a real cluster needs beyond this (probes that prove liveness, ingress, zones, data,
re-runnable jobs) are in test_cluster_readiness.py.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from .manifests import (
    APP_DEPLOYMENTS,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    WEB_PORTS,
    Doc,
    app_config,
    containers,
    env_value,
    find,
    is_custom,
    label_selector_matches,
    matches,
    metrics_port,
    one,
    pod_labels,
    pod_spec,
    workloads,
)

# --- validity ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_are_valid(docs: list[Doc], version: str) -> None:
    # The operators' custom resources: test_custom_resources.py, against tests/k8s/schemas.
    for doc in docs:
        if not is_custom(doc):
            # Raises on a schema violation, an unknown field (strict) or an unknown kind.
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_cluster_manifests_are_valid(cluster_rendered, version: str) -> None:
    for docs in cluster_rendered.values():
        for doc in docs:
            if not is_custom(doc):
                kubernetes_validate.validate(doc, version, strict=True)


def test_every_namespaced_object_is_in_purchase_system(docs: list[Doc]) -> None:
    # The Namespace itself is not part of the application (k8s/cluster/).
    assert find(docs, "Namespace") == []
    for doc in docs:
        assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def test_contract_objects_exist(docs: list[Doc]) -> None:
    # The counts (storefront 2, ledger 2 at least) are the HPAs' minimums (item: no `replicas`).
    for name in APP_DEPLOYMENTS:
        one(docs, "Deployment", name)
    assert one(docs, "HorizontalPodAutoscaler", "storefront")["spec"]["minReplicas"] == 2
    assert one(docs, "HorizontalPodAutoscaler", "ledger")["spec"]["minReplicas"] == 2
    assert one(docs, "Service", "ledger")["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert one(docs, "Service", "ledger")["spec"]["ports"][0]["port"] == 5001
    # Kafka and MongoDB are the operators' (contract, "Kubernetes"): no broker or database
    # workload of the application's own.
    one(docs, "Kafka", "kafka")
    one(docs, "PerconaServerMongoDB", "mongodb")
    assert find(docs, "StatefulSet") == []
    assert find(docs, "PersistentVolumeClaim") == []
    assert {w["metadata"]["name"] for w in workloads(docs)} == {*APP_DEPLOYMENTS, "replay-dlq"}
    for workload in workloads(docs):
        for container in containers(workload):
            assert not container["image"].startswith(("apache/kafka", "mongo", "percona/")), workload


def test_consumer_runs_the_management_command(docs: list[Doc]) -> None:
    consumer = containers(one(docs, "Deployment", "purchase-consumer"))[0]
    assert consumer["command"] == ["python", "manage.py", "consume_purchases"]


def test_web_deployments_set_their_role_and_port(docs: list[Doc]) -> None:
    for name, port in WEB_PORTS.items():
        container = containers(one(docs, "Deployment", name))[0]
        assert container["command"] == ["python", "-m", "purchases_project.serve"]
        assert env_value(container, "SERVICE_ROLE") == name
        assert env_value(container, "PORT") == str(port)
        assert int(env_value(container, "WEB_CONCURRENCY") or 0) >= 1
        assert env_value(container, "PROMETHEUS_MULTIPROC_DIR")


def test_every_app_deployment_uses_the_same_image(docs: list[Doc]) -> None:
    images = {c["image"] for name in APP_DEPLOYMENTS for c in containers(one(docs, "Deployment", name))}
    assert len(images) == 1, images


def test_local_overlay_uses_the_loaded_image(rendered: dict[str, list[Doc]]) -> None:
    for name in APP_DEPLOYMENTS:
        container = containers(one(rendered["k8s/overlays/local"], "Deployment", name))[0]
        assert container["imagePullPolicy"] in {"IfNotPresent", "Never"}


# --- labels, selectors, ports ---------------------------------------------------------


def test_workload_selectors_match_their_pod_labels(docs: list[Doc]) -> None:
    for workload in find(docs, "Deployment") + find(docs, "StatefulSet"):
        assert label_selector_matches(workload["spec"]["selector"], pod_labels(workload))


def test_service_selectors_select_pods(docs: list[Doc]) -> None:
    for service in find(docs, "Service"):
        selector = service["spec"]["selector"]
        assert selector, service["metadata"]["name"]
        assert any(matches(selector, pod_labels(w)) for w in workloads(docs)), service["metadata"]["name"]


def test_service_target_ports_match_container_ports(docs: list[Doc]) -> None:
    for service in find(docs, "Service"):
        pods = [w for w in workloads(docs) if matches(service["spec"]["selector"], pod_labels(w))]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload in pods:
                declared = [p for c in containers(workload, init=False) for p in c.get("ports", [])]
                where = f"Service {service['metadata']['name']} -> {workload['metadata']['name']}"
                assert any(p["containerPort"] == target or p.get("name") == target for p in declared), (
                    f"{where}: targetPort {target} is not a container port"
                )


def test_pod_disruption_budgets_select_workloads_and_allow_one_down(docs: list[Doc]) -> None:
    # The application's; the operators keep their own for the data tier (kafka.yaml, mongodb.yaml).
    pdbs = find(docs, "PodDisruptionBudget")
    assert {p["metadata"]["name"] for p in pdbs} == set(APP_DEPLOYMENTS)
    for pdb in pdbs:
        assert pdb["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in pdb["spec"]
        assert any(label_selector_matches(pdb["spec"]["selector"], pod_labels(w)) for w in workloads(docs))


def test_storefront_service_exposes_only_http(docs: list[Doc]) -> None:
    service = one(docs, "Service", "storefront")
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (80, 8000)
    # NodePort 30080 in the local overlay only; in production the Gateway is the way in.
    if find(docs, "Deployment", "storefront") and service["spec"]["type"] == "NodePort":
        assert port["nodePort"] == 30080
    for svc in find(docs, "Service"):
        assert svc["spec"].get("type", "ClusterIP") in {"ClusterIP", "NodePort"}, svc["metadata"]["name"]
    # No port of any Service leads to /metrics.
    for svc in find(docs, "Service"):
        for port in svc["spec"]["ports"]:
            assert port.get("targetPort") not in (metrics_port(docs), "metrics"), svc["metadata"]["name"]


# --- probes, resources, security --------------------------------------------------------


def test_long_running_containers_have_liveness_and_readiness_probes(docs: list[Doc]) -> None:
    for workload in find(docs, "Deployment") + find(docs, "StatefulSet"):
        for container in containers(workload, init=False):
            assert "livenessProbe" in container, f"{workload['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container, f"{workload['metadata']['name']}/{container['name']}"


def test_web_http_probes_send_an_allowed_host(docs: list[Doc]) -> None:
    allowed = app_config(docs)["DJANGO_ALLOWED_HOSTS"].split(",")
    for name in WEB_PORTS:
        container = containers(one(docs, "Deployment", name))[0]
        probes = [container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container]
        http_probes = [p["httpGet"] for p in probes if "httpGet" in p]
        assert http_probes, name
        for probe in http_probes:
            hosts = [h["value"] for h in probe.get("httpHeaders", []) if h["name"].lower() == "host"]
            assert hosts and hosts[0] in allowed, f"{name} probe Host header {hosts}"
            assert probe["path"] == "/health"


def test_ledger_liveness_does_not_depend_on_mongodb(docs: list[Doc]) -> None:
    # /health answers 503 while MongoDB is down; liveness on it would restart every pod.
    liveness = containers(one(docs, "Deployment", "ledger"))[0]["livenessProbe"]
    assert liveness.get("httpGet", {}).get("path") != "/health"


def test_every_container_has_requests_and_limits(docs: list[Doc]) -> None:
    for workload in workloads(docs):
        for container in containers(workload):
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(section, {}), (
                        f"{workload['metadata']['name']}/{container['name']} lacks {section}.{resource}"
                    )


def test_every_pod_and_container_is_locked_down(docs: list[Doc]) -> None:
    for workload in workloads(docs):
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, workload["metadata"]["name"]
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        assert spec.get("automountServiceAccountToken") is False
        emptydirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("privileged"), where
            if container in spec["containers"]:
                tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                assert tmp and tmp[0]["name"] in emptydirs, f"{where} needs a writable emptyDir /tmp"


def test_graceful_termination(docs: list[Doc]) -> None:
    consumer = pod_spec(one(docs, "Deployment", "purchase-consumer"))
    # The consumer's warm shutdown gives up after 20 s when MongoDB is unreachable.
    assert consumer["terminationGracePeriodSeconds"] >= 30
    for name in WEB_PORTS:
        spec = pod_spec(one(docs, "Deployment", name))
        pre_stop = spec["containers"][0]["lifecycle"]["preStop"]
        sleep = int(pre_stop["exec"]["command"][-1]) if "exec" in pre_stop else pre_stop["sleep"]["seconds"]
        assert sleep >= 5
        # preStop + the server's graceful timeout (25 s) must fit in the grace period.
        assert spec["terminationGracePeriodSeconds"] >= sleep + 25


# --- autoscaling ------------------------------------------------------------------------


def _check_behaviour(hpa: Doc) -> None:
    behavior = hpa["spec"]["behavior"]
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 30
    assert up["selectPolicy"] == "Max"
    assert {(p["type"], p["value"]) for p in up["policies"]} == {("Pods", 2), ("Percent", 100)}
    assert down["stabilizationWindowSeconds"] == 300
    assert [(p["type"], p["value"]) for p in down["policies"]] == [("Pods", 1)]


def test_web_hpas_scale_on_requests_per_second(docs: list[Doc]) -> None:
    for name, (low, high) in {"storefront": (2, 10), "ledger": (2, 5)}.items():
        hpa = one(docs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (low, high)
        [metric] = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods"
        assert metric["pods"]["metric"]["name"] == "http_requests_per_second"
        assert metric["pods"]["target"]["type"] == "AverageValue"
        _check_behaviour(hpa)


def test_consumer_hpa_scales_on_lag_up_to_the_partition_count(docs: list[Doc]) -> None:
    hpa = one(docs, "HorizontalPodAutoscaler", "purchase-consumer")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "purchase-consumer"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["maxReplicas"] <= int(app_config(docs)["KAFKA_TOPIC_PARTITIONS"])
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "purchases_consumer_lag"
    _check_behaviour(hpa)


# --- configuration, secrets, Kafka ------------------------------------------------------


def test_config_map_holds_the_contract_settings(docs: list[Doc]) -> None:
    config = app_config(docs)
    # Strimzi's bootstrap Service: the TLS listener in production, the plain one locally.
    assert config["KAFKA_BOOTSTRAP_SERVERS"] in {"kafka-kafka-bootstrap:9093", "kafka-kafka-bootstrap:9092"}
    assert config["KAFKA_TOPIC"] == "purchases"
    assert config["KAFKA_TOPIC_PARTITIONS"] == "6"
    assert config["KAFKA_DLQ_TOPIC"] == "purchases.dlq"
    assert config["KAFKA_CONSUMER_GROUP"] == "purchase-consumer-group"
    assert int(config["KAFKA_HEARTBEAT_INTERVAL_MS"]) * 3 <= int(config["KAFKA_SESSION_TIMEOUT_MS"])
    assert config["LEDGER_API_URL"] == "http://ledger:5001"
    assert config["MONGODB_DATABASE"] == "purchase_db"
    assert config["MONGODB_COLLECTION"] == "purchases"
    assert config["DJANGO_DEBUG"].lower() == "false"
    hosts = config["DJANGO_ALLOWED_HOSTS"].split(",")
    for host in ("storefront", "ledger", "localhost"):
        assert host in hosts
    for service in WEB_PORTS:
        assert f"{service}.{NAMESPACE}.svc.cluster.local" in hosts


def test_referenced_config_maps_exist(docs: list[Doc]) -> None:
    names = {d["metadata"]["name"] for d in find(docs, "ConfigMap")}
    for workload in workloads(docs):
        spec = pod_spec(workload)
        # auth-jwks (local overlay) is created by hand from the local issuer's JWKS file.
        refs = [
            v["configMap"]["name"]
            for v in spec.get("volumes", [])
            if "configMap" in v and v["configMap"]["name"] != "auth-jwks"
        ]
        for container in containers(workload):
            refs += [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e]
            refs += [
                v["valueFrom"]["configMapKeyRef"]["name"]
                for v in container.get("env", [])
                if "configMapKeyRef" in v.get("valueFrom", {})
            ]
        for ref in refs:
            assert ref in names, f"{workload['metadata']['name']} refers to missing ConfigMap {ref}"


def test_storefront_gets_no_mongodb_credentials(docs: list[Doc]) -> None:
    container = containers(one(docs, "Deployment", "storefront"))[0]
    assert "MONGODB_URI" not in {v["name"] for v in container.get("env", [])}
    assert "mongodb-ca" not in {v["name"] for v in pod_spec(one(docs, "Deployment", "storefront"))["volumes"]}


# --- metrics and network policies -------------------------------------------------------


def test_metrics_pods_are_annotated_for_prometheus(docs: list[Doc]) -> None:
    port = metrics_port(docs)
    for name in APP_DEPLOYMENTS:
        deployment = one(docs, "Deployment", name)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"
        declared = {p["name"]: p["containerPort"] for p in containers(deployment)[0]["ports"]}
        assert declared["metrics"] == port
        # The `app` label is what the monitoring scrape job and the adapter rules key on.
        assert pod_labels(deployment)["app"] == name


def _policies_for(docs: list[Doc], app: str) -> list[Doc]:
    workload = next(w for w in workloads(docs) if pod_labels(w).get("app.kubernetes.io/name") == app)
    return [
        p
        for p in find(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] and label_selector_matches(p["spec"]["podSelector"], pod_labels(workload))
    ]


def _allowed_sources(docs: list[Doc], app: str, port: int) -> set[str]:
    """Pod names (app.kubernetes.io/name) admitted to `port` of `app` from this namespace."""
    sources: set[str] = set()
    for policy in _policies_for(docs, app):
        for rule in policy["spec"].get("ingress", []):
            if not any(p.get("port") == port for p in rule.get("ports", [])):
                continue
            assert "from" in rule, f"{policy['metadata']['name']} admits any source to {app}:{port}"
            for peer in rule["from"]:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    sources.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    return sources


def test_default_deny_ingress(docs: list[Doc]) -> None:
    deny = one(docs, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"]["podSelector"] == {}
    assert deny["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny["spec"]


def test_network_policies_admit_only_the_contract_clients(docs: list[Doc]) -> None:
    assert _allowed_sources(docs, "ledger", 5001) == {"storefront"}
    # MongoDB: the ledger, the consumer, the members themselves (replication and the backup
    # agents beside them), the operator's namespace and the exporter.
    [policy] = [
        p
        for p in find(docs, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "percona-server-mongodb"
    ]
    [rule] = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [27017]
    same_namespace = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for peer in rule["from"]
        if "namespaceSelector" not in peer
    }
    assert same_namespace == {"ledger", "purchase-consumer", "percona-server-mongodb"}
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in rule["from"]
        if "namespaceSelector" in peer
    }
    assert namespaces == {"psmdb-operator", "monitoring"}
    # Kafka: Strimzi writes the brokers' policies from the client listener's peers.
    [listener] = one(docs, "Kafka", "kafka")["spec"]["kafka"]["listeners"]
    peers = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in listener["networkPolicyPeers"]
    }
    assert peers == {"storefront", "purchase-consumer", "replay-dlq"}
    assert all(set(p) == {"podSelector"} for p in listener["networkPolicyPeers"])


def test_monitoring_namespace_reaches_only_the_metrics_port(docs: list[Doc]) -> None:
    port = metrics_port(docs)
    for app in APP_DEPLOYMENTS:
        admitted_ports = set()
        for policy in _policies_for(docs, app):
            for rule in policy["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    selector = peer.get("namespaceSelector")
                    if selector == {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}:
                        # Production: the Envoy proxies reach the storefront's HTTP port.
                        assert (app, [p["port"] for p in rule["ports"]]) == ("storefront", [8000])
                    elif selector is not None:
                        assert selector == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
                        admitted_ports |= {p["port"] for p in rule["ports"]}
        assert admitted_ports == {port}, app
    # The metrics port is admitted to nobody else.
    for app in APP_DEPLOYMENTS:
        assert _allowed_sources(docs, app, port) == set()
