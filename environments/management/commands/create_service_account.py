"""python manage.py create_service_account NAME --deploy-on ENV [--deploy-on ENV2] [--view-on ENV]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core import service_accounts
from core.actors import Actor
from environments import services as env_services
from environments.models import AccessLevel, Environment

ACTOR = Actor.system("manage.py create_service_account")


class Command(BaseCommand):
    help = "Create a service account for the REST API and print its token (shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--description", default="")
        parser.add_argument("--deploy-on", action="append", default=[], metavar="ENV", help="Environment name.")
        parser.add_argument("--view-on", action="append", default=[], metavar="ENV", help="Environment name.")

    def handle(self, *args, name: str, description: str, deploy_on: list[str], view_on: list[str], **options) -> None:
        rights: dict[str, int] = {env: AccessLevel.VIEW for env in view_on}
        # Deploy wins when an environment is named twice.
        rights.update({env: AccessLevel.DEPLOY for env in deploy_on})
        environments = {env.name: env for env in Environment.objects.filter(name__in=rights)}
        unknown = sorted(set(rights) - set(environments))
        if unknown:
            known = ", ".join(Environment.objects.order_by("order").values_list("name", flat=True)) or "none"
            raise CommandError(f"No environment named {', '.join(unknown)} (environments: {known}).")
        try:
            with transaction.atomic():
                account, token = service_accounts.create_service_account(
                    actor=ACTOR, name=name, description=description
                )
                for env_name, level in rights.items():
                    env_services.set_access(
                        actor=ACTOR, user=account.user, environment=environments[env_name], level=level
                    )
        except service_accounts.ServiceAccountRefused as exc:
            raise CommandError(str(exc)) from None
        for env_name, level in sorted(rights.items()):
            self.stderr.write(f"{AccessLevel(level).label} on {env_name}")
        self.stderr.write(f"Service account {account.user.username} created. Its token, shown only this once:")
        self.stdout.write(token)
