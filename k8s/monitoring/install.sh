#!/bin/sh
# Installs Prometheus (with rules.yaml) and prometheus-adapter into the `monitoring`
# namespace. Run from the repository root with a kubectl context on the cluster.
# The NetworkPolicies in purchase-system admit the `monitoring` namespace to METRICS_PORT.
set -eu
cd "$(dirname "$0")/../.."

helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null 2>&1 || true
helm repo update prometheus-community

helm upgrade --install prometheus prometheus-community/prometheus \
  --namespace monitoring --create-namespace \
  -f k8s/monitoring/prometheus-values.yaml \
  --set-file 'ruleFiles.purchase-system-rules\.yml=k8s/monitoring/rules.yaml'

helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter \
  --namespace monitoring \
  -f k8s/monitoring/prometheus-adapter-values.yaml

# Check the adapter serves what the HPAs ask for:
#   kubectl get --raw '/apis/custom.metrics.k8s.io/v1beta1/namespaces/purchase-system/pods/*/http_requests_per_second'
#   kubectl get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/purchase-system/purchases_consumer_lag'
# Grafana: import k8s/monitoring/dashboard.json (it asks for a Prometheus data source).
