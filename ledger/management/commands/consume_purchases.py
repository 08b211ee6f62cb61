"""`python manage.py consume_purchases`: the Kafka consumer that writes purchases to MongoDB."""

import logging
import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from prometheus_client import start_http_server

from ledger.consumer import DocumentRefused, Received, purchase_consumer
from purchases_project.kafka_engine import Engine, ShutdownTimeout, TooManyInvalidEvents


class Command(BaseCommand):
    help = (
        "Consume purchase events from Kafka and store them in MongoDB. The first SIGTERM or "
        "SIGINT is a warm shutdown (write and commit the batch in hand, exit 0); a second one "
        "exits at once, leaving what was not committed to be delivered again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--topic", help=f"topic to read (default {settings.KAFKA_TOPIC})")
        parser.add_argument("--group", help=f"consumer group (default {settings.KAFKA_CONSUMER_GROUP})")
        parser.add_argument(
            "--batch-size", type=int, help=f"events per batch (default {settings.KAFKA_BATCH_SIZE})"
        )
        parser.add_argument("--loglevel", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
        parser.add_argument(
            "--metrics-port", type=int, default=settings.METRICS_PORT, help="port for /metrics (0: none)"
        )

    def handle(
        self, *args, topic=None, group=None, batch_size=None, loglevel=None, metrics_port=None, **options
    ):
        if loglevel:
            logging.getLogger().setLevel(loglevel)
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        consumer = purchase_consumer(topic=topic, group=group, batch_size=batch_size)

        def on_signal(signum, frame):
            if consumer.stopping:
                self.stderr.write(
                    f"{signal.Signals(signum).name} again: cold shutdown, nothing more is committed"
                )
                os._exit(1)
            self.stdout.write(f"{signal.Signals(signum).name}: warm shutdown, finishing the batch in hand")
            consumer.stop()

        # Before anything else, so a signal during start-up is a warm shutdown too.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self._banner(consumer, metrics_port)
        if metrics_port:
            start_http_server(metrics_port, addr=settings.BIND_ADDRESS)

        try:
            consumer.run()
        except (TooManyInvalidEvents, ShutdownTimeout, DocumentRefused) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("consumer stopped")

    def _banner(self, consumer: Engine[Received], metrics_port: int) -> None:
        config = consumer.config
        lines = [
            "purchase consumer",
            f"  broker:     {config.kafka['bootstrap.servers']}",
            f"  topic:      {config.topic} (dead letters: {settings.KAFKA_DLQ_TOPIC})",
            f"  group:      {config.kafka['group.id']}",
            f"  database:   {settings.MONGODB_DATABASE} (collection {settings.MONGODB_COLLECTION})",
            f"  batch size: {config.batch_size}",
            f"  metrics:    {':' + str(metrics_port) + '/metrics' if metrics_port else 'off'}",
            f"  liveness:   {config.liveness_file or 'off'}",
        ]
        self.stdout.write("\n".join(lines))
