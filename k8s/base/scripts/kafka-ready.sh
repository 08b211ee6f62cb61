#!/bin/bash
# Readiness (and startup) probe of a broker: ready means the broker answers a request, not
# that port 9092 accepts connections. A restarted broker binds its listener before it has
# recovered its logs and caught up with the metadata log, and processes requests only after;
# an ApiVersions request answered with error code 0 proves the latter. Bash and coreutils
# only (no JVM per probe). Usage: kafka-ready.sh [port] (default 9092).
set -euo pipefail

port="${1:-9092}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
# ApiVersions v0: size 15, api_key 18, api_version 0, correlation_id 42, client_id "ready".
printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x05ready' >&3
# The answer: size (4 bytes), correlation_id (4), error_code (2).
answer="$(timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n' || true)"
exec 3<&-
if [[ "${answer:8:12}" != "0000002a0000" ]]; then
  echo "broker on port ${port} did not answer ApiVersions (got '${answer}')" >&2
  exit 1
fi
