from __future__ import annotations

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from core.actors import Actor
from deployments import demo
from environments.models import Environment


class Command(BaseCommand):
    help = (
        "Register the example applications and deploy the demo baseline through the console's own "
        "plans (needs the stage worker and the agents running; idempotent)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--modules", type=int, default=None, help="Generated modules in hr_core (default 9000).")

    def handle(self, *args, modules: int | None, **options) -> None:
        admin = Actor.person(User.objects.get(username="admin"))
        envs = {env.name: env for env in Environment.objects.filter(name__in=["Development", "Test", "Production"])}
        versions = demo.register_examples(actor=admin, modules=modules, log=self.stdout.write)
        demo.configure_mobile_apps(actor=admin, envs=envs, versions=versions)
        demo.seed_deployments(envs=envs, versions=versions, log=self.stdout.write)
        self.stdout.write(self.style.SUCCESS("Demo deployments ready."))
