"""What a real cluster needs beyond valid manifests, checked on the rendered output.

One section per finding of the platform reviews (docs/deploy-kubernetes.md says how to see
each on a cluster). The consumer's liveness command is not only read but run, against
files of known ages. The data tier (Kafka, MongoDB, Secrets, storage) has its own checks
in test_data_tier.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from .manifests import (
    APP_DEPLOYMENTS,
    LOCAL,
    PRODUCTION,
    WEB_PORTS,
    Doc,
    app_config,
    containers,
    env_value,
    find,
    label_selector_matches,
    one,
    pod_labels,
    pod_spec,
)

LIVENESS_FILE = "/tmp/consumer-alive"


def secret_ref(container: Doc, name: str) -> tuple[str, str] | None:
    for var in container.get("env", []):
        if var["name"] == name:
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


# --- 1. the HPAs own the replica counts -------------------------------------------------


def test_autoscaled_deployments_leave_replicas_to_the_hpa(docs: list[Doc]) -> None:
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in find(docs, "HorizontalPodAutoscaler")]
    assert sorted(targets) == sorted(APP_DEPLOYMENTS)
    for name in targets:
        assert "replicas" not in one(docs, "Deployment", name)["spec"], f"{name}: apply would reset the HPA"


# --- 2. web liveness does not queue behind requests -------------------------------------


def test_web_liveness_does_not_depend_on_request_capacity(docs: list[Doc]) -> None:
    for name in WEB_PORTS:
        container = containers(one(docs, "Deployment", name), init=False)[0]
        liveness = container["livenessProbe"]
        # The kernel completes the handshake on the server's listening socket however busy
        # the worker threads are; an HTTP probe would wait behind them.
        assert set(liveness) & {"httpGet", "exec", "grpc"} == set(), name
        assert liveness["tcpSocket"]["port"] == "http", name
        assert liveness["failureThreshold"] * liveness["periodSeconds"] >= 30
        # Readiness may depend on capacity: it only takes the pod out of the Service.
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"


# --- 3. the consumer's loop proves it is alive -------------------------------------------


def _consumer(docs: list[Doc]) -> Doc:
    return containers(one(docs, "Deployment", "purchase-consumer"), init=False)[0]


def _run_probe(command: list[str], path: Path) -> int:
    assert command[:2] == ["/bin/sh", "-c"], command
    script = command[2]
    assert script.count(LIVENESS_FILE) == 1, script
    return subprocess.run(["/bin/sh", "-c", script.replace(LIVENESS_FILE, str(path))], timeout=10).returncode


def test_consumer_probes_check_the_age_of_the_loop_file(docs: list[Doc]) -> None:
    container = _consumer(docs)
    assert env_value(container, "CONSUMER_LIVENESS_FILE") == LIVENESS_FILE
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts, "the file must be on a writable volume"
    for kind in ("livenessProbe", "startupProbe"):
        command = container[kind]["exec"]["command"]
        # Cheap: a shell with stat and date, never a Python interpreter per probe.
        assert "python" not in " ".join(command) and "manage.py" not in " ".join(command)
    liveness = container["livenessProbe"]
    # A stale file restarts the pod within two minutes, one slow probe does not.
    assert liveness["failureThreshold"] >= 2
    assert 60 + liveness["periodSeconds"] * liveness["failureThreshold"] <= 120
    assert liveness["timeoutSeconds"] <= liveness["periodSeconds"]


@pytest.mark.parametrize("probe", ["livenessProbe", "startupProbe"])
def test_consumer_probe_fails_once_the_file_is_older_than_60_s(rendered, tmp_path: Path, probe: str) -> None:
    command = _consumer(rendered[PRODUCTION])[probe]["exec"]["command"]
    alive = tmp_path / "consumer-alive"
    assert _run_probe(command, alive) != 0, "no file yet: not alive"
    alive.touch()
    assert _run_probe(command, alive) == 0
    now = time.time()
    for age, expected_ok in ((30, True), (55, True), (65, False), (3600, False)):
        os.utime(alive, (now - age, now - age))
        assert (_run_probe(command, alive) == 0) is expected_ok, f"file {age} s old"
    alive.touch()
    assert _run_probe(command, alive) == 0, "touched again: alive again"


# --- 4. the indexes exist before the ledger and the consumer start ----------------------


def test_ledger_and_consumer_ensure_indexes_before_they_start(docs: list[Doc]) -> None:
    for name in ("ledger", "purchase-consumer"):
        deployment = one(docs, "Deployment", name)
        [init] = pod_spec(deployment).get("initContainers", [])
        main = containers(deployment, init=False)[0]
        assert init["command"][:3] == ["python", "manage.py", "ensure_indexes"]
        timeout = float(init["command"][init["command"].index("--timeout") + 1])
        assert 60 <= timeout <= 900
        assert init["image"] == main["image"]
        assert init["imagePullPolicy"] == main["imagePullPolicy"]
        # Each with the pod's own user (the ledger's may create indexes but not write),
        # and the CA its URI names.
        assert secret_ref(init, "MONGODB_URI") == secret_ref(main, "MONGODB_URI")
        mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
        assert mounts["mongodb-ca"] == {m["name"]: m["mountPath"] for m in main["volumeMounts"]}["mongodb-ca"]


# --- 5. the public way in: Gateway API on Envoy Gateway, TLS, the host in step -----------


def test_production_gateway_terminates_tls_for_the_public_host(rendered) -> None:
    docs = rendered[PRODUCTION]
    gateway = one(docs, "Gateway", "public")
    assert gateway["spec"]["gatewayClassName"] == "envoy"
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    https = listeners["https"]
    host = https["hostname"]
    assert (https["protocol"], https["port"], https["tls"]["mode"]) == ("HTTPS", 443, "Terminate")
    [cert_ref] = https["tls"]["certificateRefs"]
    certificate = one(docs, "Certificate", "purchases-example-com")
    assert certificate["spec"]["secretName"] == cert_ref["name"]
    assert certificate["spec"]["dnsNames"] == [host]
    assert certificate["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "letsencrypt",
    }
    # Plain HTTP answers only with a redirect to https.
    assert listeners["http"]["hostname"] == host
    redirect = one(docs, "HTTPRoute", "https-redirect")
    assert redirect["spec"]["parentRefs"] == [{"name": "public", "sectionName": "http"}]
    [rule] = redirect["spec"]["rules"]
    assert "backendRefs" not in rule
    assert rule["filters"] == [
        {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
    ]
    route = one(docs, "HTTPRoute", "storefront")
    assert route["spec"]["parentRefs"] == [{"name": "public", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == [host]
    [rule] = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "storefront", "port": 80}]
    # Django in step with the host: allowed, `next` links on it, https known from the proxy.
    config = app_config(docs)
    assert host in config["DJANGO_ALLOWED_HOSTS"].split(",")
    assert urlparse(config["PUBLIC_BASE_URL"])[:2] == ("https", host)
    assert config["DJANGO_SECURE_PROXY_SSL_HEADER"] == "true"
    assert int(config["DJANGO_SECURE_HSTS_SECONDS"]) >= 86400


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].replace(".", "").isdigit():
            return float(duration[: -len(unit)]) * units[unit]
    raise ValueError(duration)


def test_edge_cuts_slow_clients_limits_each_client_and_sees_its_address(rendered) -> None:
    docs = rendered[PRODUCTION]
    client = one(docs, "ClientTrafficPolicy", "public-clients")["spec"]
    assert client["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}
    ]
    timeouts = client["timeout"]["http"]
    # Headers within 10 s, the whole request soon after (BODY_TIMEOUT_S is 10 s in the app).
    assert 1 <= _seconds(timeouts["requestHeadersReceivedTimeout"]) <= 15
    assert (
        _seconds(timeouts["requestHeadersReceivedTimeout"])
        < _seconds(timeouts["requestReceivedTimeout"])
        <= 30
    )
    # The client's own address: from the load balancer's PROXY header, required.
    assert client["proxyProtocol"] == {"optional": False}
    backend = one(docs, "BackendTrafficPolicy", "storefront-limits")["spec"]
    assert backend["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "storefront"}
    ]
    # Per client address (Distinct), counted across every proxy replica (Global).
    assert backend["rateLimit"]["type"] == "Global"
    rules = backend["rateLimit"]["global"]["rules"]
    assert {r["clientSelectors"][0]["sourceCIDR"]["value"] for r in rules} == {"0.0.0.0/0", "::/0"}
    for rule in rules:
        assert rule["clientSelectors"] == [
            {"sourceCIDR": {"type": "Distinct", "value": rule["clientSelectors"][0]["sourceCIDR"]["value"]}}
        ]
        assert rule["limit"]["requests"] > 0
    assert backend["requestBuffer"]["limit"] == "128Ki"


def test_the_edge_class_is_envoy_gateway_behind_a_proxy_protocol_balancer(cluster_rendered) -> None:
    docs = cluster_rendered["k8s/cluster/production"]
    gateway_class = one(docs, "GatewayClass", "envoy")
    assert gateway_class["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    ref = gateway_class["spec"]["parametersRef"]
    proxy = one(docs, "EnvoyProxy", ref["name"])
    assert proxy["metadata"]["namespace"] == ref["namespace"]
    service = proxy["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] == "*"
    # cert-manager proves the domain with DNS-01: no solver pod behind the default-deny policy.
    [solver] = one(docs, "ClusterIssuer", "letsencrypt")["spec"]["acme"]["solvers"]
    assert set(solver) == {"selector", "dns01"}


def test_node_port_only_in_the_local_overlay(rendered) -> None:
    for path, docs in rendered.items():
        node_ports = [
            s["metadata"]["name"] for s in find(docs, "Service") if s["spec"].get("type") == "NodePort"
        ]
        assert node_ports == (["storefront"] if path == LOCAL else []), path
        assert bool(find(docs, "Gateway")) == (path == PRODUCTION), path
        assert find(docs, "Ingress") == [], "ingress-nginx is end of life: the edge is the Gateway"
    # Behind the Gateway only the Envoy proxies reach the storefront.
    policy = one(rendered[PRODUCTION], "NetworkPolicy", "storefront-http")
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/component": "proxy",
                    "app.kubernetes.io/managed-by": "envoy-gateway",
                }
            },
        }
    ]


def test_identity_settings_in_both_overlays(rendered) -> None:
    for path in (LOCAL, PRODUCTION):
        config = app_config(rendered[path])
        assert config["AUTH_ISSUER"] and config["AUTH_AUDIENCE"] == "purchases"
        assert config["AUTH_USERID_CLAIM"] == "sub"
    assert app_config(rendered[PRODUCTION])["AUTH_JWKS_URL"].startswith("https://")
    local = rendered[LOCAL]
    assert app_config(local)["AUTH_JWKS_URL"] == "file:///etc/purchases/auth/jwks.json"
    for name in WEB_PORTS:
        deployment = one(local, "Deployment", name)
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        [mount] = [
            m for m in containers(deployment, init=False)[0]["volumeMounts"] if m["name"] == "auth-jwks"
        ]
        assert mount == {"name": "auth-jwks", "mountPath": "/etc/purchases/auth", "readOnly": True}
        assert volumes["auth-jwks"]["configMap"]["items"] == [{"key": "jwks.json", "path": "jwks.json"}]


# --- 6. jobs that re-apply ------------------------------------------------------------------


def test_no_immutable_job_templates_are_applied(docs: list[Doc]) -> None:
    # A Job's template is immutable and names the hashed ConfigMaps: re-applying after a
    # config change would fail. CronJobs may change; jobs are started from them. Topics,
    # users and backups are the operators' now: the one CronJob left is the replay.
    assert find(docs, "Job") == []
    assert [c["metadata"]["name"] for c in find(docs, "CronJob")] == ["replay-dlq"]
    cron = one(docs, "CronJob", "replay-dlq")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["suspend"] is True
    replay = containers(cron)[0]
    assert replay["command"][:3] == ["python", "manage.py", "replay_dlq"]


# --- 7. zones --------------------------------------------------------------------------------


def test_pods_spread_over_zones(docs: list[Doc]) -> None:
    for workload in find(docs, "Deployment"):
        name = workload["metadata"]["name"]
        constraints = pod_spec(workload).get("topologySpreadConstraints", [])
        keys = {c["topologyKey"]: c for c in constraints}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= set(keys), name
        for constraint in constraints:
            assert constraint["maxSkew"] == 1
            assert label_selector_matches(constraint["labelSelector"], pod_labels(workload)), name
