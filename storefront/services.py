"""Writes on the storefront's side: a purchase becomes one acknowledged event."""

from decimal import Decimal

from django.conf import settings

from purchases_project.events import PurchaseEvent
from storefront.producer import get_producer


def purchase_publish(
    *, username: str, userid: str, price: Decimal, idempotency_key: str | None = None
) -> PurchaseEvent:
    """Stamp the purchase and publish it; returns once the broker has acknowledged it.

    Raises `producer.PublishError` when it did not, within `KAFKA_PUBLISH_TIMEOUT_S`.
    """
    event = PurchaseEvent.new(username=username, userid=userid, price=price, idempotency_key=idempotency_key)
    get_producer().publish(settings.KAFKA_TOPIC, event, timeout=settings.KAFKA_PUBLISH_TIMEOUT_S)
    return event
