"""Settings for every process: storefront, ledger and the consumer.

One module, every knob from the environment. Names follow the contract; only
Django's own settings carry the `DJANGO_` prefix. `SERVICE_ROLE` chooses which
URLs a web process serves; management commands and tests do not need it.
"""

from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

SERVICE_ROLES = ("storefront", "ledger")
SERVICE_ROLE = env.str("SERVICE_ROLE", default="")

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-debug-only-key" if DEBUG else "")
# Kept short of Django's own check so management commands and tests run without a key;
# wsgi.py refuses to serve without one.
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["localhost", "127.0.0.1", "[::1]", "storefront", "ledger"],
)

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "csp",
    # Before rest_framework: its browsable page gains the sign-in links (templates/rest_framework).
    "purchases_project.web",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "storefront",
    "ledger",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "purchases_project.middleware.RequestIdMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Django's sessions and CSRF, except on /buy (bearer tokens only, the hot path).
    "purchases_project.web.middleware.BrowserSessionMiddleware",
    "purchases_project.middleware.JsonErrorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "purchases_project.middleware.HtmlContentSecurityPolicy",
    # django-prometheus's, with every label one the server chooses (an unknown method: `other`).
    "purchases_project.middleware.PrometheusLabelsMiddleware",
]

# The edge: TLS ends at the ingress, which says so in X-Forwarded-Proto (trusted only when
# DJANGO_SECURE_PROXY_SSL_HEADER says the ingress sets it); HSTS once the site is https only.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False) else None
)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The browsable API and the docs UI: scripts, fonts and images from the app itself; inline
# style attributes (DRF's pages and Swagger UI use them), no inline script; no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
}
# Where customers reach the storefront (e.g. https://shop.example.com): `next` links are
# built on it, not on whatever Host the request named. Empty: the request's own host.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

ROOT_URLCONF = {
    "storefront": "storefront.urls",
    "ledger": "ledger.urls",
}.get(SERVICE_ROLE, "purchases_project.urls")

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "purchases_project.web.context.signin_state",
            ]
        },
    },
]

WSGI_APPLICATION = "purchases_project.wsgi.application"

# No SQL database: purchases live in MongoDB, and nothing needs migrations.
DATABASES: dict[str, dict[str, Any]] = {}

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the installed apps when nothing was collected (local runs, tests).
WHITENOISE_USE_FINDERS = not STATIC_ROOT.is_dir()

# Request bodies: /buy reads at most this much itself and answers 413 beyond it.
PURCHASE_MAX_BODY_BYTES = 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = PURCHASE_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": [
        "purchases_project.renderers.DecimalJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "COERCE_DECIMAL_TO_STRING": False,
    "EXCEPTION_HANDLER": "purchases_project.errors.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Purchase tracking",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The document is for programs: bearer tokens. A signed-in browser's session is the same
    # customer on the same endpoints (purchases_project/identity/session.py).
    "AUTHENTICATION_WHITELIST": ["purchases_project.identity.web.BearerTokenAuthentication"],
}

# Bearer tokens (both web roles; purchases_project/identity). Web processes refuse to start
# without an issuer and its JWKS; management commands and tests do not need them.
AUTH_ISSUER = env.str("AUTH_ISSUER", default="")
AUTH_AUDIENCE = env.str("AUTH_AUDIENCE", default="purchases")
AUTH_JWKS_URL = env.str("AUTH_JWKS_URL", default="")
AUTH_USERID_CLAIM = env.str("AUTH_USERID_CLAIM", default="sub")
# An unknown key id refetches the JWKS at most this often (a rotated key is picked up then).
AUTH_JWKS_REFETCH_S = env.float("AUTH_JWKS_REFETCH_S", default=60.0)

# Browser sign-in (both web roles; purchases_project/web/signin.py): OpenID Connect with the
# issuer above, whose access token must be a JWT for AUTH_AUDIENCE (the bearer check decides
# who is signed in). Without a client id and secret sign-in is off and bearer tokens work as before.
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
# Asked for at sign-in; the issuer grants purchases:read-all to support staff only.
OIDC_SCOPE = env.str("OIDC_SCOPE", default="openid purchases:read-all")
# Extra authorization parameters some issuers need for that access token, as a query string
# (Auth0: `audience=purchases`; the local provider: `prompt=login`, so each sign-in asks a name).
OIDC_AUTH_PARAMS = env.str("OIDC_AUTH_PARAMS", default="")
# Sessions in signed cookies (no database); each role's cookies have names of their own, since
# a browser shares cookies across the ports of one host. The session ends with the access token.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_NAME = f"{SERVICE_ROLE or 'web'}_session"
CSRF_COOKIE_NAME = f"{SERVICE_ROLE or 'web'}_csrftoken"
SESSION_COOKIE_HTTPONLY = CSRF_COOKIE_HTTPONLY = True  # the CSRF token travels in the forms
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PUBLIC_BASE_URL.startswith("https://")
CSRF_TRUSTED_ORIGINS = [PUBLIC_BASE_URL] if PUBLIC_BASE_URL else []
CSRF_FAILURE_VIEW = "purchases_project.web.signin.csrf_failure"  # 403 JSON

# Kafka (storefront and consumer).
KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="kafka:9092")
KAFKA_TOPIC = env.str("KAFKA_TOPIC", default="purchases")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=6)
KAFKA_DLQ_TOPIC = env.str("KAFKA_DLQ_TOPIC", default="purchases.dlq")
KAFKA_DLQ_MAX_CONSECUTIVE = env.int("KAFKA_DLQ_MAX_CONSECUTIVE", default=100)
KAFKA_CONSUMER_GROUP = env.str("KAFKA_CONSUMER_GROUP", default="purchase-consumer-group")
KAFKA_BATCH_SIZE = env.int("KAFKA_BATCH_SIZE", default=500)
# After the first event of a batch, how long the consumer waits for more (bounds the delay
# a lone purchase waits before it is written).
KAFKA_BATCH_WAIT_MS = env.int("KAFKA_BATCH_WAIT_MS", default=20)
KAFKA_SESSION_TIMEOUT_MS = env.int("KAFKA_SESSION_TIMEOUT_MS", default=10000)
KAFKA_HEARTBEAT_INTERVAL_MS = env.int("KAFKA_HEARTBEAT_INTERVAL_MS", default=KAFKA_SESSION_TIMEOUT_MS // 3)
KAFKA_MAX_POLL_INTERVAL_MS = env.int("KAFKA_MAX_POLL_INTERVAL_MS", default=300000)
# How long the storefront's producer gathers events into one request to the broker: 2 ms
# cut the broker's work per purchase and the p99 at 32 connections (docs/decisions/0001).
KAFKA_LINGER_MS = env.int("KAFKA_LINGER_MS", default=2)
# How long POST /buy waits for the broker's acknowledgement before answering 503.
KAFKA_PUBLISH_TIMEOUT_S = env.float("KAFKA_PUBLISH_TIMEOUT_S", default=1.5)
# Security for every Kafka client (purchases_project/kafka_config.py): PLAINTEXT, SSL,
# SASL_PLAINTEXT or SASL_SSL; the SASL and TLS values apply when set.
KAFKA_SECURITY_PROTOCOL = env.str("KAFKA_SECURITY_PROTOCOL", default="PLAINTEXT")
KAFKA_SASL_MECHANISM = env.str("KAFKA_SASL_MECHANISM", default="")
KAFKA_SASL_USERNAME = env.str("KAFKA_SASL_USERNAME", default="")
KAFKA_SASL_PASSWORD = env.str("KAFKA_SASL_PASSWORD", default="")
KAFKA_SSL_CA_LOCATION = env.str("KAFKA_SSL_CA_LOCATION", default="")
# How long a consumer's warm shutdown may wait for an unreachable database
# (keep it below the pod's termination grace period).
CONSUMER_SHUTDOWN_TIMEOUT_S = env.float("CONSUMER_SHUTDOWN_TIMEOUT_S", default=20.0)
# A file the consumer's loop touches at least every 5 s while it runs (also while it holds
# a batch through a database outage); a liveness probe checks its age. Empty: no file.
CONSUMER_LIVENESS_FILE = env.str("CONSUMER_LIVENESS_FILE", default="")

# The storefront derives the purchase_id of an Idempotency-Key with this secret (an HMAC);
# required by the storefront (at least 32 characters), the same on all its pods.
IDEMPOTENCY_SECRET = env.str("IDEMPOTENCY_SECRET", default="")

# The ledger, as the storefront sees it.
LEDGER_API_URL = env.str("LEDGER_API_URL", default="http://ledger:5001")
LEDGER_CONNECT_TIMEOUT_S = env.float("LEDGER_CONNECT_TIMEOUT_S", default=1.0)
LEDGER_READ_TIMEOUT_S = env.float("LEDGER_READ_TIMEOUT_S", default=5.0)

# MongoDB (ledger and consumer).
MONGODB_URI = env.str("MONGODB_URI", default="mongodb://mongodb:27017")
MONGODB_DATABASE = env.str("MONGODB_DATABASE", default="purchase_db")
MONGODB_COLLECTION = env.str("MONGODB_COLLECTION", default="purchases")
MONGODB_TIMEOUT_MS = env.int("MONGODB_TIMEOUT_MS", default=2000)

METRICS_PORT = env.int("METRICS_PORT", default=9100)
# The address every process listens on (its public port, if any, and /metrics).
BIND_ADDRESS = env.str("BIND_ADDRESS", default="0.0.0.0")

# The web server (`python -m purchases_project.serve`, granian: docs/decisions/0014).
WEB_BIND_ADDRESS = env.str("BIND_ADDRESS", default="0.0.0.0")
WEB_PORT = env.int("PORT", default={"storefront": 8000, "ledger": 5001}.get(SERVICE_ROLE, 8000))
# Worker processes; 0 means one per CPU the container may use, at least 2.
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=0)
# Python threads per worker that run the application (the server's I/O and the reading of
# request bodies run outside them).
WEB_THREADS = env.int("WEB_THREADS", default=8)
# On SIGTERM in-flight requests may finish for this long (below the pod's grace period).
WEB_GRACEFUL_TIMEOUT_S = env.int("WEB_GRACEFUL_TIMEOUT_S", default=25)
# A client that has not sent its whole request header by then is disconnected.
WEB_HEADER_READ_TIMEOUT_S = env.int("WEB_HEADER_READ_TIMEOUT_S", default=10)
# A request body must arrive whole this soon after its header, else 408 and the connection closes.
BODY_TIMEOUT_S = env.float("BODY_TIMEOUT_S", default=10.0)
# Where the workers' metrics files live (multiprocess mode); empty: a fresh temporary folder.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "json" for one JSON object a line (production), "text" for people at a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "purchases_project.logging.RequestIdFilter"},
        "unexpected_errors_only": {"()": "purchases_project.logging.UnexpectedErrorsOnly"},
        "rejected_requests_as_warnings": {"()": "purchases_project.logging.RejectedRequestsAsWarnings"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
        },
        "text": {"format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in ("json", "text") else "json",
            "filters": ["request_id", "rejected_requests_as_warnings"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR", "filters": ["unexpected_errors_only"]},
        "kafka": {"level": "WARNING"},
        "pymongo": {"level": "WARNING"},
    },
}
