"""`python -m purchases_project.serve`: the web roles' start command.

Starts the project's WSGI server for `SERVICE_ROLE` (storefront or ledger) with
the project's server settings (`gunicorn.conf.py` at the project root): the
port by role, `WEB_CONCURRENCY` workers and their threads, the workers'
aggregated metrics on `METRICS_PORT`, graceful shutdown. Extra arguments are
passed to the server. It refuses to start without the token settings
(`AUTH_ISSUER`, `AUTH_JWKS_URL`); wsgi.py checks them again for any other server.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"


def check_settings() -> None:
    """Stop with a one-line message, before any worker starts, when tokens cannot be verified."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "purchases_project.settings")
    from django.core.exceptions import ImproperlyConfigured

    from purchases_project.identity import check_settings

    try:
        check_settings()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"cannot start: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    from gunicorn.app.wsgiapp import run

    check_settings()

    sys.argv = ["purchases-serve", "--config", str(CONFIG), *(argv or []), "purchases_project.wsgi"]
    run()


if __name__ == "__main__":
    main(sys.argv[1:])
