#!/bin/sh
# Installs Prometheus and Alertmanager (with rules.yaml), prometheus-adapter and the
# MongoDB exporter into the `monitoring` namespace (the Kafka exporter is Strimzi's, in
# purchase-system: k8s/base/kafka.yaml). Run from the repository root with a kubectl
# context on the cluster, after the operators, k8s/cluster/production and the overlay:
# the credentials (Alertmanager's receiver, the exporter's MongoDB user) come from the
# secret store through external-secrets.yaml. The NetworkPolicies in purchase-system
# admit the `monitoring` namespace to METRICS_PORT and the exporters' ports only.
set -eu
cd "$(dirname "$0")/../.."

helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null 2>&1 || true
helm repo update prometheus-community

kubectl create namespace monitoring --dry-run=client -o yaml | kubectl apply -f -
# Alertmanager's receiver and the exporter's URI, from the store (ClusterSecretStore).
kubectl apply -f k8s/monitoring/external-secrets.yaml
kubectl -n monitoring wait --for=condition=Ready externalsecret/alertmanager-receiver externalsecret/mongodb-exporter --timeout=120s

helm upgrade --install prometheus prometheus-community/prometheus \
  --namespace monitoring --create-namespace \
  -f k8s/monitoring/prometheus-values.yaml \
  --set-file 'ruleFiles.purchase-system-rules\.yml=k8s/monitoring/rules.yaml'

helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter \
  --namespace monitoring \
  -f k8s/monitoring/prometheus-adapter-values.yaml

# The MongoDB exporter logs in over TLS: it needs the operator's CA (a certificate, not a
# secret), copied from purchase-system.
ca="$(kubectl -n purchase-system get secret mongodb-ssl -o 'jsonpath={.data.ca\.crt}' | base64 -d)"
kubectl -n monitoring create secret generic mongodb-ca --from-literal=ca.crt="$ca" \
  --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install mongodb-exporter prometheus-community/prometheus-mongodb-exporter \
  --namespace monitoring -f k8s/monitoring/mongodb-exporter-values.yaml

# Check the adapter serves what the HPAs ask for:
#   kubectl get --raw '/apis/custom.metrics.k8s.io/v1beta1/namespaces/purchase-system/pods/*/http_requests_per_second'
#   kubectl get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/purchase-system/purchases_consumer_lag'
# Grafana: import k8s/monitoring/dashboard.json (it asks for a Prometheus data source).
