from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from deployments import demo


class Command(BaseCommand):
    help = "Create the demo environments, front-ends and users (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--frontends-root",
            default=str(Path(settings.BASE_DIR) / "var" / "frontends"),
            help="Folder under which each demo front-end keeps its releases.",
        )
        parser.add_argument(
            "--secrets-dir",
            help="Write each environment's applications' database connection to DIR/<environment>.app.dsn "
            "(mode 0600), for the front-end servers.",
        )

    def handle(self, *args, frontends_root: str, secrets_dir: str | None, **options) -> None:
        demo.load_environments(
            frontends_root=Path(frontends_root),
            secrets_dir=Path(secrets_dir) if secrets_dir else None,
            log=self.stdout.write,
        )
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
