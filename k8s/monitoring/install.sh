#!/bin/sh
# Installs Prometheus (with rules.yaml), prometheus-adapter and the Kafka and MongoDB
# exporters into the `monitoring` namespace. Run from the repository root with a kubectl
# context on the cluster, after purchase-system-secrets exists (the MongoDB exporter's
# URI is made from its monitor user). The NetworkPolicies in purchase-system admit the
# `monitoring` namespace to METRICS_PORT, and the exporters' pods to Kafka and MongoDB.
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

# The Kafka and MongoDB exporters (alerts on under-replicated partitions and a down database).
secret() { kubectl -n purchase-system get secret purchase-system-secrets -o "jsonpath={.data.$1}" | base64 -d; }
monitor_uri="mongodb://$(secret MONGODB_MONITOR_USERNAME):$(secret MONGODB_MONITOR_PASSWORD)@mongodb-0.mongodb.purchase-system.svc.cluster.local:27017/admin?replicaSet=rs0"
kubectl -n monitoring create secret generic mongodb-exporter --from-literal=mongodb-uri="$monitor_uri" \
  --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install kafka-exporter prometheus-community/prometheus-kafka-exporter \
  --namespace monitoring -f k8s/monitoring/kafka-exporter-values.yaml
helm upgrade --install mongodb-exporter prometheus-community/prometheus-mongodb-exporter \
  --namespace monitoring -f k8s/monitoring/mongodb-exporter-values.yaml

# Check the adapter serves what the HPAs ask for:
#   kubectl get --raw '/apis/custom.metrics.k8s.io/v1beta1/namespaces/purchase-system/pods/*/http_requests_per_second'
#   kubectl get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/purchase-system/purchases_consumer_lag'
# Grafana: import k8s/monitoring/dashboard.json (it asks for a Prometheus data source).
