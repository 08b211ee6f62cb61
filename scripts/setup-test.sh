#!/usr/bin/env bash
# What the test suite needs beyond .venv: Debian packages (installed as root when
# missing). Under CI a missing tool is an error, never a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null || need+=(prometheus)
# The browser tests drive Debian's Chromium (Playwright never downloads one), with a font for its screenshots.
command -v chromium >/dev/null || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]} ..."
    apt-get update -qq
    # No recommends: they would bring node-exporter onto port 9100, the consumer's metrics port.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # The package starts a Prometheus server; the tests start their own.
    systemctl disable --now prometheus >/dev/null 2>&1 || pkill -x prometheus || true
  else
    echo "error: the tests need ${need[*]} (Debian packages); run as root or install them" >&2
    exit 1
  fi
fi

# checkov lives in a virtualenv of its own: its pins clash with the project's.
CHECKOV_VENV="${CHECKOV_VENV:-.venv-checkov}"
if [ ! -f "$CHECKOV_VENV/.ready" ] || [ requirements/checkov.txt -nt "$CHECKOV_VENV/.ready" ]; then
  echo "installing checkov into $CHECKOV_VENV ..."
  "${PYTHON:-python3}" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
  touch "$CHECKOV_VENV/.ready"
fi
