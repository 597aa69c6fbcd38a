"""Register application bundles from files: ``python manage.py register_bundle PATH [PATH...] [--user NAME]``."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.catalog.bundles import BundleRefused


class Command(BaseCommand):
    help = "Validate and register application bundles (zip or tar.gz with lifetime.toml) in the catalog."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, help="bundle archives")
        parser.add_argument("--user", help="user recorded as the registrant (default: the command line)")
        parser.add_argument(
            "--skip-registered",
            action="store_true",
            help="do not fail on a version already registered (for re-runnable demo set-ups)",
        )

    def handle(self, *args, paths: list[Path], user: str | None, skip_registered: bool, **options) -> None:
        actor = Actor.system("manage.py register_bundle")
        if user:
            try:
                actor = Actor.person(get_user_model().objects.get(username=user))
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {user!r}.") from None
        failed = 0
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}") from None
            try:
                version = catalog.register_bundle(data=data, actor=actor, source=path.name)
            except BundleRefused as exc:
                if skip_registered and "already registered" in exc.message:
                    self.stdout.write(f"{path.name}: {exc.message}")
                    continue
                self.stderr.write(f"{path.name}: refused: {exc.message}")
                failed += 1
                continue
            self.stdout.write(
                f"{path.name}: registered {version.application.name} {version.version} "
                f"(key {version.key}, sha256 {version.bundle_sha256[:12]})"
            )
        if failed:
            raise CommandError(f"{failed} bundle(s) refused.")
