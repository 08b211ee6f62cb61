from django.apps import AppConfig
from django.conf import settings


class StorefrontConfig(AppConfig):
    name = "storefront"
    verbose_name = "Storefront: the public purchase API"

    def ready(self) -> None:
        if settings.SERVICE_ROLE == "storefront":
            from purchases_project import per_process
            from storefront import producer

            # Connected before the first purchase, so it does not wait for the broker's
            # producer id; flushed once the worker has answered what it accepted.
            per_process.on_start(producer.get_producer)
            per_process.on_stop(producer.close_producer)
