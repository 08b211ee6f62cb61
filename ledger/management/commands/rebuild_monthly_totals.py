"""`python manage.py rebuild_monthly_totals`: make every user's monthly totals again from the purchases."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from pymongo.errors import PyMongoError

from ledger.monthly_totals import monthly_totals_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the per-user, per-month totals (GET /spending) from the stored purchases: once after "
        "upgrading a database whose purchases predate them, or to repair them. One transaction per "
        "user, writing only the months that differ, so it is safe beside a running consumer and a "
        "second run writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout",
            type=float,
            default=60.0,
            help="give up on a user whose rebuild takes longer than this many seconds (default 60)",
        )

    def handle(self, *args, timeout: float, **options):
        try:
            result = monthly_totals_rebuild(timeout_s=timeout)
        except PyMongoError as exc:
            raise CommandError(f"monthly totals not rebuilt: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(
            f"monthly totals rebuilt on {settings.MONGODB_DATABASE}: {result.users} users, "
            f"{result.months_written} months written, {result.months_removed} removed"
        )
