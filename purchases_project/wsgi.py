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


_check_role()
application = get_wsgi_application()
