#!/bin/sh
# Installs the operators the purchase system's manifests need, at the versions in
# versions.env, each into a namespace of its own, watching purchase-system. Run once per
# cluster from the repository root with a kubectl context on it (docs/deploy-kubernetes.md,
# section 1), then `kubectl apply -k k8s/cluster/<env>` and the overlay. Re-running
# upgrades to the pinned versions. Usage: k8s/operators/install.sh [local|production]
#   local:      kind / minikube; no Drain Cleaner webhook or rate-limit Redis needed.
#   production: everything, with the cloud identities noted below (CHANGE-ME).
set -eu
cd "$(dirname "$0")/../.."
env="${1:-production}"
. k8s/operators/versions.env

# The Namespace first (k8s/cluster/base, idempotent): the operators that watch it bind their
# roles in it. The rest of k8s/cluster/<env> needs these operators' resource types.
kubectl apply -k k8s/cluster/base

# cert-manager: the public certificate (ClusterIssuer in k8s/cluster/production), the
# webhooks' certificates of Drain Cleaner, and MongoDB's TLS (the Percona operator asks it).
# Production: its ServiceAccount needs Route 53 rights for DNS-01 (IRSA annotation).
helm upgrade --install cert-manager oci://quay.io/jetstack/charts/cert-manager \
  --version "${CERT_MANAGER_VERSION}" \
  --namespace cert-manager --create-namespace \
  --set crds.enabled=true --wait

# External Secrets Operator: the ExternalSecrets of k8s/overlays/production. Production:
# its ServiceAccount (external-secrets/external-secrets) reads Secrets Manager (IRSA).
helm repo add external-secrets https://charts.external-secrets.io >/dev/null 2>&1 || true
helm repo update external-secrets
helm upgrade --install external-secrets external-secrets/external-secrets \
  --version "${EXTERNAL_SECRETS_VERSION}" \
  --namespace external-secrets --create-namespace --wait

# Strimzi: Kafka, KafkaNodePool, KafkaTopic, KafkaUser in purchase-system. The Restricted
# pod security provider makes every pod it creates fit the namespace's restricted policy.
helm upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
  --version "${STRIMZI_VERSION}" \
  --namespace strimzi --create-namespace \
  --set 'watchNamespaces={purchase-system}' \
  --set 'extraEnvs[0].name=STRIMZI_POD_SECURITY_PROVIDER_CLASS' \
  --set 'extraEnvs[0].value=restricted' --wait

# Strimzi Drain Cleaner: a drained node's Kafka pods are rolled by the operator (never
# below min.insync.replicas) instead of evicted; the Kafka PDB allows no eviction.
if [ "${env}" = production ]; then
  helm upgrade --install strimzi-drain-cleaner oci://quay.io/strimzi-helm/strimzi-drain-cleaner \
    --version "${STRIMZI_DRAIN_CLEANER_VERSION}" \
    --namespace strimzi-drain-cleaner --create-namespace \
    --set namespace.create=false --wait
fi

# Percona Operator for MongoDB: PerconaServerMongoDB, its backups and restores.
helm repo add percona https://percona.github.io/percona-helm-charts/ >/dev/null 2>&1 || true
helm repo update percona
helm upgrade --install psmdb-operator percona/psmdb-operator \
  --version "${PERCONA_MONGODB_OPERATOR_VERSION}" \
  --namespace psmdb-operator --create-namespace \
  --set watchNamespace=purchase-system --wait

# Envoy Gateway: the public edge (GatewayClass envoy, k8s/cluster/production). Production
# values name the Redis of the global (per-client, all-replica) rate limit.
values=""
if [ "${env}" = production ]; then
  values="-f k8s/operators/envoy-gateway-values.yaml"
fi
# shellcheck disable=SC2086
helm upgrade --install envoy-gateway oci://docker.io/envoyproxy/gateway-helm \
  --version "${ENVOY_GATEWAY_VERSION}" \
  --namespace envoy-gateway-system --create-namespace ${values} --wait

echo "operators installed; next: kubectl apply -k k8s/cluster/${env}"
