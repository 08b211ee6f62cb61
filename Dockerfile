# One image for the three roles of the purchase system (storefront, ledger, consumer);
# the Kubernetes Deployments choose the role with their command and SERVICE_ROLE.
#   docker build -t purchase-system:dev .        (or `make image`: podman, see the README)
# BASE_IMAGE is the official image; `make image` swaps in a stand-in built from Debian's
# packages where that image cannot be pulled, and says so.
ARG BASE_IMAGE=python:3.11-slim

# --- build: a virtualenv with the run-time requirements only --------------------------
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# production.lock pins production.txt (which includes base.txt) with every package's hash;
# nothing from dev.txt goes into the image. pip and setuptools only install: the image
# runs without them.
COPY requirements/pip.lock requirements/production.lock /tmp/requirements/
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements/pip.lock \
    && pip install --no-cache-dir --require-hashes -r /tmp/requirements/production.lock \
    && pip uninstall --yes --quiet pip setuptools

# --- runtime ------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    METRICS_PORT=9100

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# The code stays owned by root and read-only for the app user.
COPY . .

# Static files (DRF's pages, the docs UI) are served by whitenoise from
# /app/staticfiles; bytecode is compiled now because the root filesystem is read-only
# at run time.
RUN DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput \
    && python -m compileall -q /app

USER 10001:10001

EXPOSE 8000 5001 9100

# Every role serves /metrics on METRICS_PORT (Kubernetes uses its own probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('METRICS_PORT', '9100'), timeout=4)"]

# Default: the storefront (an explicit SERVICE_ROLE still wins). The ledger runs the same
# server with SERVICE_ROLE=ledger; the consumer runs `python manage.py consume_purchases`.
CMD ["/bin/sh", "-c", "SERVICE_ROLE=\"${SERVICE_ROLE:-storefront}\" exec python -m purchases_project.serve"]
