# The two commands: `make run` and `make test`. Each sets up what it needs.
# `make image` builds the container image (as root, with podman).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test setup setup-test image lint format clean lock

$(VENV)/.ready: requirements/pip.lock requirements/dev.lock devstack/package-lock.json scripts/setup.sh
	PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/setup.sh

setup: $(VENV)/.ready

## run: the whole system on 127.0.0.1 (storefront :8000, ledger :5001); Ctrl-C stops it
run: $(VENV)/.ready
	$(PY) -m devstack.run

setup-test: $(VENV)/.ready
	./scripts/setup-test.sh

## test: the whole suite, against real local broker and database servers
test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

## image: purchase-system:dev (IMAGE=...) on python:3.11-slim, or on a Debian stand-in where that
## cannot be pulled (said loudly; its root filesystem is cached in .local/image/)
image:
	./scripts/build-image.sh

lint: $(VENV)/.ready
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.ready
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .local staticfiles test-artifacts bench-results .pytest_cache

## bench: our stack beside the baseline on 127.0.0.1, into bench-results/ (BENCH_ARGS="--quick --rounds 1")
BENCH_ARGS ?=
.PHONY: bench
bench: $(VENV)/.ready
	./bench/setup.sh
	$(PY) -m bench $(BENCH_ARGS)

## lock: re-pin every dependency with its hash (requirements/*.lock) after changing requirements/*.txt
lock: $(VENV)/.ready
	./scripts/lock.sh
