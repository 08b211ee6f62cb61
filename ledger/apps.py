from django.apps import AppConfig
from django.conf import settings


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger: purchases in MongoDB"

    def ready(self) -> None:
        if settings.SERVICE_ROLE == "ledger":
            from ledger import db
            from purchases_project import per_process

            per_process.on_stop(db.close)
