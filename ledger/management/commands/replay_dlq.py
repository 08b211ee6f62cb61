"""`python manage.py replay_dlq`: re-publish dead-lettered purchases that are valid now."""

from confluent_kafka import KafkaException
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ledger.dlq import REPLAY_GROUP, dead_letter_replayer, replay_result


class Command(BaseCommand):
    help = (
        "Read the dead-letter topic (group purchase-dlq-replay) until it is idle, re-validate each "
        "event, re-publish the valid ones to the purchase topic with their original key, and leave "
        "the still-invalid ones. Commits only what it handled; safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--idle-timeout", type=float, default=5.0, help="stop after this many idle seconds"
        )
        parser.add_argument("--max-messages", type=int, default=1_000_000, help="stop after this many events")

    def handle(self, *args, idle_timeout: float, max_messages: int, **options):
        replayer = dead_letter_replayer(
            dlq_topic=settings.KAFKA_DLQ_TOPIC,
            topic=settings.KAFKA_TOPIC,
            group=REPLAY_GROUP,
            idle_timeout_s=idle_timeout,
            max_messages=max_messages,
        )
        try:
            replayer.run()
        except KafkaException as exc:
            raise CommandError(f"replay stopped: {exc}") from exc
        result = replay_result(replayer)
        self.stdout.write(
            f"replayed {result.replayed} events to {settings.KAFKA_TOPIC}; left {result.left} still invalid"
        )
        for partition, offset in sorted(result.first_left.items()):
            self.stdout.write(f"  partition {partition}: committed up to the first left at offset {offset}")
