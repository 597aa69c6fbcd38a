from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deployments import demo


class Command(BaseCommand):
    help = (
        "Bring the demo back to its first state: drop the console's data, the demo's application databases "
        "and roles, the front-ends' folders, the local artifacts and the console's Redis database "
        "(scripts/reset.sh runs it, then scripts/up.sh)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--yes", action="store_true", help="Do it (everything of the demo is lost).")
        parser.add_argument("--frontends-root", default=str(Path(settings.BASE_DIR) / "var" / "frontends"))
        parser.add_argument("--secrets-dir", help="Remove the agents' keys and applications' connections kept there.")

    def handle(self, *args, yes: bool, frontends_root: str, secrets_dir: str | None, **options) -> None:
        if not yes:
            raise CommandError("This drops every plan, environment and user of this console: run it with --yes.")
        if not settings.DEV:
            raise CommandError("Only a development install (LIFETIME_DEV=true) is reset this way.")
        demo.reset(
            frontends_root=Path(frontends_root),
            secrets_dir=Path(secrets_dir) if secrets_dir else None,
            log=self.stdout.write,
        )
        self.stdout.write(self.style.SUCCESS("The demo is back to its first state: scripts/up.sh starts it again."))
