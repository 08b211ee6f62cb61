#!/usr/bin/env bash
# `make lock`: pins every dependency, transitive ones included, with their hashes.
# The requirements/*.txt files say what the project wants; the requirements/*.lock files
# made from them are what `make run`, `make test`, `make bench` and the image install
# (pip install --require-hashes). Run it after changing a requirements/*.txt file and
# commit both. uv resolves (it reads PyPI); pip installs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
UV="$VENV/bin/uv"  # pinned in requirements/dev.txt

compile() {
  local out=$1
  shift
  "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "make lock" --output-file "$out" "$@"
  echo "wrote $out ($(grep -c '^[a-zA-Z]' "$out") packages)"
}

# The installer itself, so that even pip comes pinned with its hash.
compile requirements/pip.lock requirements/pip.txt
# The image: what the three processes run with.
compile requirements/production.lock requirements/production.txt
# make run and make test: the same versions as the image, plus the tools.
compile requirements/dev.lock requirements/dev.txt --constraint requirements/production.lock
# make bench: the tests' versions, plus the chart and the profiler.
compile requirements/bench.lock requirements/dev.txt requirements/bench.txt --constraint requirements/dev.lock
# checkov, in a virtualenv of its own (its pins clash with the project's).
compile requirements/checkov.lock requirements/checkov.txt
