"""`python manage.py create_topics`: the purchase topic and its dead-letter topic, explicitly."""

from confluent_kafka import KafkaException
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from purchases_project.topics import topics_ensure


class Command(BaseCommand):
    help = "Create the purchases topic and its dead-letter topic if they are missing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--partitions",
            type=int,
            default=settings.KAFKA_TOPIC_PARTITIONS,
            help=f"partitions per topic (default {settings.KAFKA_TOPIC_PARTITIONS}: KAFKA_TOPIC_PARTITIONS)",
        )

    def handle(self, *args, partitions: int, **options):
        if partitions < 1:
            raise CommandError("--partitions must be at least 1")
        try:
            outcome = topics_ensure(
                topics={settings.KAFKA_TOPIC: partitions, settings.KAFKA_DLQ_TOPIC: partitions},
            )
        except KafkaException as exc:
            raise CommandError(
                f"could not create topics on {settings.KAFKA_BOOTSTRAP_SERVERS}: {exc}"
            ) from exc
        for name, what in outcome.items():
            self.stdout.write(f"{name}: {what}")
