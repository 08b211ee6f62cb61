"""The operators' custom resources against their API, offline.

Each resource the project applies (the overlays, the cluster kustomizations, the loose
files of k8s/monitoring and the restore example) is validated with the schema written in
tests/k8s/schemas/ for the operator version pinned in k8s/operators/versions.env. The
schemas are closed, so a misspelt or misplaced field, a wrong type or a value outside an
enum fails here, and the tests below prove that they do. The versions of the schemas,
versions.env and install.sh must agree.
"""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
import yaml

from .crd_schema import errors, schema_files, validators
from .manifests import CLUSTER_KUSTOMIZATIONS, KUSTOMIZATIONS, PRODUCTION, REPO, Doc, is_custom, one, render

VERSIONS = REPO / "k8s/operators/versions.env"
INSTALL = REPO / "k8s/operators/install.sh"
# Loose files of custom resources, applied by hand or by a script (not by kustomize).
LOOSE = ["k8s/monitoring/external-secrets.yaml", "k8s/runbooks/mongodb-restore.yaml"]


@pytest.fixture(scope="module")
def table():
    return validators()


@pytest.fixture(scope="module")
def all_custom() -> list[tuple[str, Doc]]:
    out = []
    for path in KUSTOMIZATIONS + CLUSTER_KUSTOMIZATIONS:
        out += [(path, d) for d in render(path) if is_custom(d)]
    for path in LOOSE:
        out += [(path, d) for d in yaml.safe_load_all((REPO / path).read_text()) if d]
    return out


def pinned() -> dict[str, str]:
    pairs = [
        line.split("=", 1) for line in VERSIONS.read_text().splitlines() if line and not line.startswith("#")
    ]
    return {k: v for k, v in pairs}


def test_every_custom_resource_matches_its_operators_api(all_custom, table) -> None:
    problems = []
    for path, doc in all_custom:
        key = (doc["apiVersion"], doc["kind"])
        assert key in table, f"{path}: no schema for {key} in tests/k8s/schemas"
        problems += [f"{path}: {e}" for e in errors(doc, table)]
    assert not problems, "\n".join(problems)


def test_every_kind_with_a_schema_is_used(all_custom, table) -> None:
    used = {(d["apiVersion"], d["kind"]) for _, d in all_custom}
    assert used == set(table), set(table) - used


def _production(kind: str, name: str) -> Doc:
    return copy.deepcopy(one(render(PRODUCTION), kind, name))


@pytest.fixture(scope="module")
def production() -> list[Doc]:
    return render(PRODUCTION)


def _rejected(doc: Doc, table) -> list[str]:
    return errors(doc, table)


@pytest.mark.parametrize(
    ("kind", "name", "change", "expected"),
    [
        # A misspelt field (British spelling of authorization).
        (
            "Kafka",
            "kafka",
            lambda s: s["kafka"].__setitem__("authorisation", s["kafka"].pop("authorization")),
            "authorisation",
        ),
        # A misplaced field: rack belongs under spec.kafka, not spec.
        ("Kafka", "kafka", lambda s: s.__setitem__("rack", s["kafka"].pop("rack")), "rack"),
        # v1beta2's replicas on the Kafka resource is gone in v1 (node pools hold it).
        ("Kafka", "kafka", lambda s: s["kafka"].__setitem__("replicas", 3), "replicas"),
        # A value outside an enum.
        (
            "Kafka",
            "kafka",
            lambda s: s["kafka"]["listeners"][0]["authentication"].__setitem__("type", "scram-sha-256"),
            "scram-sha-256",
        ),
        # v1beta2's singular `operation` on an ACL rule.
        (
            "KafkaUser",
            "storefront",
            lambda s: s["authorization"]["acls"][0].__setitem__("operation", "Write"),
            "operation",
        ),
        (
            "KafkaNodePool",
            "brokers",
            lambda s: s["storage"].__setitem__("storageClass", "gp3"),
            "storageClass",
        ),
        ("KafkaTopic", "purchases", lambda s: s.__setitem__("partitions", "6"), "'6'"),
        ("PerconaServerMongoDB", "mongodb", lambda s: s["tls"].__setitem__("mode", "required"), "required"),
        (
            "PerconaServerMongoDB",
            "mongodb",
            lambda s: s["backup"]["pitr"].__setitem__("enable", True),
            "enable",
        ),
        ("PerconaServerMongoDB", "mongodb", lambda s: s["users"][0].pop("roles"), "roles"),
        (
            "Gateway",
            "public",
            lambda s: s["listeners"][0]["tls"].__setitem__("mode", "terminate"),
            "terminate",
        ),
        (
            "HTTPRoute",
            "storefront",
            lambda s: s["rules"][0].__setitem__("backendRef", s["rules"][0].pop("backendRefs")),
            "backendRef",
        ),
        (
            "ClientTrafficPolicy",
            "public-clients",
            lambda s: s["timeout"]["http"].__setitem__("requestHeaderTimeout", "10s"),
            "requestHeaderTimeout",
        ),
        (
            "BackendTrafficPolicy",
            "storefront-limits",
            lambda s: s["rateLimit"].__setitem__("type", "global"),
            "global",
        ),
        (
            "Certificate",
            "purchases-example-com",
            lambda s: s.__setitem__("issuerRef", {"kind": "ClusterIssuer"}),
            "name",
        ),
        (
            "ExternalSecret",
            "purchase-system-secrets",
            lambda s: s["secretStoreRef"].__setitem__("kind", "Store"),
            "Store",
        ),
    ],
)
def test_a_wrong_field_fails(production, table, kind: str, name: str, change, expected: str) -> None:
    doc = copy.deepcopy(one(production, kind, name))
    assert _rejected(doc, table) == []
    change(doc["spec"])
    problems = _rejected(doc, table)
    assert problems and any(expected in p for p in problems), problems


def test_every_kind_rejects_an_unknown_spec_field(all_custom, table) -> None:
    seen = set()
    for _, doc in all_custom:
        key = (doc["apiVersion"], doc["kind"])
        if key in seen:
            continue
        seen.add(key)
        bad = copy.deepcopy(doc)
        bad["spec"]["specification"] = {}
        assert _rejected(bad, table), key
        bad = copy.deepcopy(doc)
        bad["metadata"]["lables"] = {}
        assert _rejected(bad, table), key


def test_the_schemas_are_json_schema() -> None:
    for schema_file in schema_files():
        for schema in schema_file.kinds.values():
            jsonschema.Draft202012Validator.check_schema(schema)


# --- versions ---------------------------------------------------------------------------


def test_schemas_are_written_for_the_pinned_versions() -> None:
    versions = pinned()
    for schema_file in schema_files():
        assert versions[schema_file.operator] == schema_file.version, schema_file.path.name


def test_install_script_pins_every_operator_chart() -> None:
    script = INSTALL.read_text()
    versions = pinned()
    installs = re.findall(r"helm upgrade --install (\S+) (\S+) \\\n\s+--version \"\$\{(\w+)\}\"", script)
    releases = {"cert-manager", "external-secrets", "strimzi", "strimzi-drain-cleaner", "psmdb-operator"}
    assert {name for name, _, _ in installs} == releases | {"envoy-gateway"}
    # Every `helm upgrade --install` names a version from versions.env, and every version is used.
    assert script.count("helm upgrade --install") == len(installs)
    assert {var for _, _, var in installs} == set(versions)
    for value in versions.values():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), value
    # Strimzi's pods must fit the namespace's restricted Pod Security.
    assert "STRIMZI_POD_SECURITY_PROVIDER_CLASS" in script and "value=restricted" in script


def test_operators_watch_the_namespace_of_the_custom_resources() -> None:
    script = INSTALL.read_text()
    assert "--set 'watchNamespaces={purchase-system}'" in script
    assert "--set watchNamespace=purchase-system" in script
    # The Percona operator's namespace is the one the MongoDB NetworkPolicy admits.
    assert "--namespace psmdb-operator" in script
    policies = (REPO / "k8s/base/network-policies.yaml").read_text()
    assert "kubernetes.io/metadata.name: psmdb-operator" in policies
