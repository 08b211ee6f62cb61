#!/usr/bin/env bash
# What the test suite needs beyond .venv: Debian packages (installed as root when
# missing). Under CI a missing tool is an error, never a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."

had_prometheus=$(command -v prometheus || true)
# prometheus: promtool and a real server for the observability tests (no recommends: they
# would bring node-exporter onto port 9100, the consumer's metrics port). chromium: the
# browser tests (Playwright never downloads a browser), with a font for the screenshots.
# podman and debootstrap: the image test builds the image (tests/image, scripts/build-image.sh).
# stunnel4: the TLS terminator in front of the local broker (tests/system/test_tls_auth.py).
./scripts/debian-packages.sh prometheus chromium fonts-dejavu-core podman debootstrap stunnel4
if [ -z "$had_prometheus" ]; then
  # The package starts a Prometheus server of its own; the tests start theirs.
  systemctl disable --now prometheus >/dev/null 2>&1 || pkill -x prometheus || true
fi

# checkov lives in a virtualenv of its own: its pins clash with the project's.
CHECKOV_VENV="${CHECKOV_VENV:-.venv-checkov}"
if [ ! -f "$CHECKOV_VENV/.ready" ] || [ requirements/checkov.lock -nt "$CHECKOV_VENV/.ready" ]; then
  echo "installing checkov into $CHECKOV_VENV ..."
  "${PYTHON:-python3}" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/pip.lock
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/checkov.lock
  touch "$CHECKOV_VENV/.ready"
fi
