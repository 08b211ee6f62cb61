"""WSGI entry point for both web roles; `SERVICE_ROLE` says which one this process is."""

import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "purchases_project.settings")


def _check_role() -> None:
    from django.conf import settings

    if settings.SERVICE_ROLE not in settings.SERVICE_ROLES:
        raise ImproperlyConfigured(
            f"SERVICE_ROLE must be one of {', '.join(settings.SERVICE_ROLES)} (got {settings.SERVICE_ROLE!r})"
        )
    if not settings.SECRET_KEY:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required unless DJANGO_DEBUG is on")
    from purchases_project.identity import check_settings

    check_settings()
    if settings.SERVICE_ROLE == "storefront":
        from purchases_project.events import check_idempotency_secret

        check_idempotency_secret()


LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _drop_idle_housekeeping() -> None:
    """Django's per-request receivers with nothing to do here: there is no SQL database
    (`DATABASES = {}`), so nothing to reset or close, and in-process caches have no
    connection to close. Each would otherwise walk its handlers on every request."""
    from django.conf import settings
    from django.core import signals
    from django.core.cache import close_caches
    from django.db import close_old_connections, reset_queries

    if not settings.DATABASES:
        signals.request_started.disconnect(reset_queries)
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
    if all(cache["BACKEND"] in LOCAL_CACHES for cache in settings.CACHES.values()):
        signals.request_finished.disconnect(close_caches)


_check_role()
application = get_wsgi_application()
_drop_idle_housekeeping()
