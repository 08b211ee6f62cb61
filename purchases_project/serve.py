"""`python -m purchases_project.serve`: the web roles' start command.

Starts the project's WSGI server for `SERVICE_ROLE` (storefront or ledger) with
the project's server settings (`gunicorn.conf.py` at the project root): the
port by role, `WEB_CONCURRENCY` workers and their threads, the workers'
aggregated metrics on `METRICS_PORT`, graceful shutdown. Extra arguments are
passed to the server.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"


def main(argv: list[str] | None = None) -> None:
    from gunicorn.app.wsgiapp import run

    sys.argv = ["purchases-serve", "--config", str(CONFIG), *(argv or []), "purchases_project.wsgi"]
    run()


if __name__ == "__main__":
    main(sys.argv[1:])
