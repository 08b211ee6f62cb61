"""What a real cluster needs beyond valid manifests, checked on the rendered output.

One section per finding of the platform review (docs/deploy-kubernetes.md says how to see
each on a cluster). The probe scripts are not only read but run: the consumer's liveness
command against files of known ages, Kafka's readiness script against a real
Kafka-protocol broker (Tansu), a port that accepts but never answers, and a closed port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from devstack.stack import free_port, port_open, tansu_binary, wait_until

from .manifests import (
    APP_DEPLOYMENTS,
    REPO,
    WEB_PORTS,
    Doc,
    app_config,
    containers,
    env_value,
    find,
    kafka_config,
    label_selector_matches,
    one,
    pod_labels,
    pod_spec,
)

LIVENESS_FILE = "/tmp/consumer-alive"
SCRIPTS = REPO / "k8s/base/scripts"
PRODUCTION = "k8s/overlays/production"
LOCAL = "k8s/overlays/local"


def secret_key(container: Doc, name: str) -> str | None:
    for var in container.get("env", []):
        if var["name"] == name:
            return var.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
    return None


def config_map(docs: list[Doc], prefix: str) -> dict[str, str]:
    [found] = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith(prefix + "-")]
    return found["data"]


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
    command = _consumer(rendered["k8s"])[probe]["exec"]["command"]
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


# --- 4. Kafka is ready when it answers ----------------------------------------------------


def test_kafka_is_ready_only_when_it_answers_requests(docs: list[Doc]) -> None:
    kafka = one(docs, "StatefulSet", "kafka")
    container = containers(kafka, init=False)[0]
    for kind in ("readinessProbe", "startupProbe"):
        probe = container[kind]
        assert "tcpSocket" not in probe, f"{kind}: an open port is not a ready broker"
        assert probe["exec"]["command"] == ["/bin/bash", "/scripts/kafka-ready.sh"]
        assert probe["timeoutSeconds"] > 5, "the script waits up to 5 s for the answer"
    # The probe's script is the one in the repository, mounted from kafka-scripts.
    assert config_map(docs, "kafka-scripts")["kafka-ready.sh"] == (SCRIPTS / "kafka-ready.sh").read_text()
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/scripts"] == "scripts"
    # A broker that just became ready stays so for a minute before the next one goes down.
    assert kafka["spec"]["minReadySeconds"] >= 30
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 600


@pytest.fixture
def broker():
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"},
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(port), 15, "broker port")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=7)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _kafka_ready(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(SCRIPTS / "kafka-ready.sh"), str(port)], capture_output=True, text=True, timeout=15
    )


def test_kafka_ready_script_passes_against_a_broker(broker: int) -> None:
    result = _kafka_ready(broker)
    assert result.returncode == 0, result.stderr


def test_kafka_ready_script_fails_on_a_port_that_never_answers() -> None:
    # What a broker looks like while it binds its listener but still recovers its logs.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        started = time.monotonic()
        result = _kafka_ready(silent.getsockname()[1])
        assert result.returncode != 0
        assert "did not answer ApiVersions" in result.stderr
        assert time.monotonic() - started < 8, "must give up within the probe's timeout"


def test_kafka_ready_script_fails_on_a_closed_port() -> None:
    assert _kafka_ready(free_port()).returncode != 0


# --- 5. the indexes exist before the ledger and the consumer start ----------------------


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
        # Each with the pod's own user: the ledger's may create indexes but not write.
        assert secret_key(init, "MONGODB_URI") == secret_key(main, "MONGODB_URI")


# --- 6. database users outside the hook; the ledger only reads ---------------------------


def test_ledger_reads_with_its_own_user_and_the_consumer_writes_with_another(docs: list[Doc]) -> None:
    ledger = containers(one(docs, "Deployment", "ledger"), init=False)[0]
    consumer = _consumer(docs)
    assert secret_key(ledger, "MONGODB_URI") == "MONGODB_LEDGER_URI"
    assert secret_key(consumer, "MONGODB_URI") == "MONGODB_CONSUMER_URI"
    users_js = config_map(docs, "mongodb-scripts")["mongodb-users.js"]
    assert 'env.MONGODB_LEDGER_PASSWORD, [{ role: ledgerRole, db: "admin" }]' in users_js
    # The ledger's role: read, plus createIndex (ensure_indexes, mongoengine's index check).
    assert (
        'const ledgerPrivileges = [{ resource: { db: database, collection: "" }, actions: ["createIndex"] }];'
        in (users_js)
    )
    assert 'const ledgerRoles = [{ role: "read", db: database }];' in users_js
    assert 'env.MONGODB_CONSUMER_PASSWORD, [{ role: "readWrite", db: database }]' in users_js


def test_mongod_hook_manages_no_users_and_logs_in_only_before_initiation(docs: list[Doc]) -> None:
    hook_js = config_map(docs, "mongodb-scripts")["mongodb-init-replica-set.js"]
    assert "createUser" not in hook_js and "updateUser" not in hook_js
    # The unauthenticated check comes first and ends the hook on every later start.
    assert hook_js.index("db.hello().setName") < hook_js.index("quit(0)") < hook_js.index(".auth(")
    mongod = containers(one(docs, "StatefulSet", "mongodb"), init=False)[0]
    assert not [
        v["name"] for v in mongod["env"] if v["name"].startswith(("MONGODB_CONSUMER", "MONGODB_LEDGER"))
    ]
    cron = one(docs, "CronJob", "mongodb-users")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert containers(cron)[0]["command"][-1] == "/scripts/mongodb-users.js"


# --- 7. the public way in: an Ingress with TLS, the host in step -------------------------


def test_production_ingress_terminates_tls_for_the_public_host(rendered) -> None:
    docs = rendered[PRODUCTION]
    ingress = one(docs, "Ingress", "storefront")
    [rule] = ingress["spec"]["rules"]
    host = rule["host"]
    [tls] = ingress["spec"]["tls"]
    assert tls["hosts"] == [host] and tls["secretName"]
    notes = ingress["metadata"]["annotations"]
    assert "cert-manager.io/cluster-issuer" in notes or "cert-manager.io/issuer" in notes
    assert ingress["spec"]["ingressClassName"] == "nginx"
    # Per-client rate and connection limits at the edge.
    assert int(notes["nginx.ingress.kubernetes.io/limit-rps"]) > 0
    assert int(notes["nginx.ingress.kubernetes.io/limit-connections"]) > 0
    assert notes["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "storefront", "port": {"name": "http"}}
    # Django in step with the host: allowed, `next` links on it, https known from the proxy.
    config = app_config(docs)
    assert host in config["DJANGO_ALLOWED_HOSTS"].split(",")
    assert urlparse(config["PUBLIC_BASE_URL"])[:2] == ("https", host)
    assert config["DJANGO_SECURE_PROXY_SSL_HEADER"] == "true"
    assert int(config["DJANGO_SECURE_HSTS_SECONDS"]) >= 86400


def test_client_timeouts_are_set_on_the_ingress_controller() -> None:
    values = yaml.safe_load((REPO / PRODUCTION / "ingress-nginx-values.yaml").read_text())
    config = values["controller"]["config"]
    for key in ("client-header-timeout", "client-body-timeout"):
        assert 1 <= int(config[key]) <= 60, key
    assert config["limit-req-status-code"] == "429"
    assert values["controller"]["service"]["externalTrafficPolicy"] == "Local"


def test_node_port_only_in_the_local_overlay(rendered) -> None:
    for path, docs in rendered.items():
        node_ports = [
            s["metadata"]["name"] for s in find(docs, "Service") if s["spec"].get("type") == "NodePort"
        ]
        assert node_ports == (["storefront"] if path == LOCAL else []), path
        assert bool(find(docs, "Ingress")) == (path == PRODUCTION), path
    # Behind the Ingress only the controller's namespace reaches the storefront.
    policy = one(rendered[PRODUCTION], "NetworkPolicy", "storefront-http")
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
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


# --- 8. jobs that re-apply, dead letters that stay ---------------------------------------


def test_no_immutable_job_templates_are_applied(docs: list[Doc]) -> None:
    # A Job's template is immutable and names the hashed ConfigMaps: re-applying after a
    # config change would fail. CronJobs may change; jobs are started from them.
    assert find(docs, "Job") == []
    for cron in find(docs, "CronJob"):
        assert cron["spec"]["concurrencyPolicy"] == "Forbid", cron["metadata"]["name"]
    topics = one(docs, "CronJob", "kafka-create-topics")
    assert not topics["spec"].get("suspend")
    assert one(docs, "CronJob", "replay-dlq")["spec"]["suspend"] is True
    replay = containers(one(docs, "CronJob", "replay-dlq"))[0]
    assert replay["command"][:3] == ["python", "manage.py", "replay_dlq"]


def test_dead_letters_are_kept_long_and_the_setting_reaches_existing_topics(docs: list[Doc]) -> None:
    retention = int(kafka_config(docs)["KAFKA_DLQ_RETENTION_MS"])
    assert retention == -1 or retention >= 30 * 24 * 3600 * 1000
    script = config_map(docs, "kafka-scripts")["create-kafka-topics.sh"]
    assert (
        'create "${KAFKA_DLQ_TOPIC}" "${KAFKA_DLQ_TOPIC_PARTITIONS}" "retention.ms=${KAFKA_DLQ_RETENTION_MS}"'
        in script
    )
    assert "kafka-configs.sh" in script and "--alter" in script


def test_shell_scripts_parse() -> None:
    for script in sorted(SCRIPTS.glob("*.sh")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


# --- 9. zones ------------------------------------------------------------------------------


def test_pods_spread_over_zones(docs: list[Doc]) -> None:
    for workload in [*find(docs, "Deployment"), one(docs, "StatefulSet", "kafka")]:
        name = workload["metadata"]["name"]
        constraints = pod_spec(workload).get("topologySpreadConstraints", [])
        keys = {c["topologyKey"]: c for c in constraints}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= set(keys), name
        for constraint in constraints:
            assert constraint["maxSkew"] == 1
            assert label_selector_matches(constraint["labelSelector"], pod_labels(workload)), name


def test_production_brokers_must_spread(rendered) -> None:
    kafka = one(rendered[PRODUCTION], "StatefulSet", "kafka")
    rules = {c["topologyKey"]: c["whenUnsatisfiable"] for c in pod_spec(kafka)["topologySpreadConstraints"]}
    assert rules == {
        "topology.kubernetes.io/zone": "DoNotSchedule",
        "kubernetes.io/hostname": "DoNotSchedule",
    }
    # The local overlay must still schedule on one node.
    local = one(rendered[LOCAL], "StatefulSet", "kafka")
    assert {c["whenUnsatisfiable"] for c in pod_spec(local)["topologySpreadConstraints"]} == {
        "ScheduleAnyway"
    }


def test_broker_rack_comes_from_the_zone(docs: list[Doc]) -> None:
    kafka = containers(one(docs, "StatefulSet", "kafka"), init=False)[0]
    [rack] = [v for v in kafka["env"] if v["name"] == "KAFKA_RACK"]
    assert rack["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['topology.kubernetes.io/zone']"
    start = config_map(docs, "kafka-scripts")["start-kafka.sh"]
    assert 'echo "broker.rack=${KAFKA_RACK}"' in start


# --- 10. data that survives ----------------------------------------------------------------


def test_database_is_backed_up_and_not_drained_silently(docs: list[Doc]) -> None:
    backup = one(docs, "CronJob", "mongodb-backup")
    [container] = containers(backup)
    assert container["command"] == ["/bin/bash", "/scripts/mongodb-backup.sh"]
    assert int(env_value(container, "MONGODB_BACKUP_RETENTION_DAYS")) >= 7
    [claim] = [v for v in pod_spec(backup)["volumes"] if "persistentVolumeClaim" in v]
    one(docs, "PersistentVolumeClaim", claim["persistentVolumeClaim"]["claimName"])
    script = config_map(docs, "mongodb-scripts")["mongodb-backup.sh"]
    assert "--oplog" in script and "-mtime +" in script
    assert one(docs, "PodDisruptionBudget", "mongodb")["spec"]["maxUnavailable"] == 0
