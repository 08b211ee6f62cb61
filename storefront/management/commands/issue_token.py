"""`python manage.py issue_token USERID [--scope S] [--ttl 24h]`: a token from the local issuer."""

import re

from django.core.management.base import BaseCommand, CommandError

from purchases_project.local_issuer import DEFAULT_DIRECTORY, ISSUER, LocalIssuer, NoLocalKey

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """Seconds in `90`, `90s`, `30m`, `24h` or `7d`."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if match is None or int(match.group(1)) == 0:
        raise CommandError(f"--ttl must be a positive number of s, m, h or d, e.g. 24h (got {text!r})")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


class Command(BaseCommand):
    help = (
        "Print a bearer token for USERID signed with the local issuer's key (made by `make run` "
        "under .local/issuer/), which the services of `make run` accept. Development only: it "
        "refuses to run without that key."
    )

    def add_arguments(self, parser):
        parser.add_argument("userid", help="the customer (the token's `sub`)")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            help="a scope to grant, e.g. purchases:read-all (repeat it, or space-separate several)",
        )
        parser.add_argument("--ttl", default="24h", help="how long the token is valid: 90s, 30m, 24h, 7d")
        parser.add_argument(
            "--issuer-dir",
            default=str(DEFAULT_DIRECTORY),
            help="the local issuer's folder (default: %(default)s)",
        )
        parser.add_argument(
            "--issuer",
            default=ISSUER,
            help="the token's `iss`: the local OpenID provider's URL (default: %(default)s)",
        )

    def handle(self, *args, userid, scope, ttl, issuer_dir, issuer, **options):
        if not userid.strip():
            raise CommandError("USERID must not be empty")
        local = LocalIssuer(issuer_dir, issuer=issuer)
        if not local.exists():
            raise CommandError(
                f"no local signing key in {local.directory}: `make run` creates it on its first start. "
                "Tokens for other environments come from their own OpenID Connect issuer."
            )
        scopes = " ".join(" ".join(scope).split())
        try:
            token = local.token(userid, scope=scopes, ttl_s=parse_ttl(ttl))
        except NoLocalKey as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(token)
