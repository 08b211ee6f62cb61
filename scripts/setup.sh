#!/usr/bin/env bash
# Creates .venv with the project's development requirements (what `make run` needs), as
# pinned with their hashes in requirements/dev.lock.
# On a fresh Debian machine, as root, it installs python3-venv when venv is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv ..."
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv "$VENV"
    else
      echo "error: '$PYTHON -m venv' failed; install your distribution's venv package (Debian: python3-venv)" >&2
      exit 1
    fi
  fi
fi
# Every package, pip included, from the lock files and checked against their hashes (make lock).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/pip.lock
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.lock
# The local OpenID provider and axe-core (devstack/package-lock.json): Node.js 20 or newer.
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing nodejs and npm ..."
    apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "error: npm is missing; install Node.js 20 or newer (Debian: nodejs npm)" >&2
    exit 1
  fi
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "error: the local OpenID provider needs Node.js 20 or newer (found $(node --version))" >&2
  exit 1
fi
npm ci --prefix devstack --no-audit --no-fund --loglevel=error
DJANGO_SECRET_KEY=collectstatic "$VENV/bin/python" manage.py collectstatic --noinput --verbosity 0
touch "$VENV/.ready"
