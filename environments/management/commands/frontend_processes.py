"""Print Procfile lines (honcho format, ``name: command``) for the agent and the front-end server of
every enabled front-end, so that ``make up`` runs them beside the console on a laptop.

    python manage.py frontend_processes > var/Procfile.frontends
"""

from __future__ import annotations

import os
import shlex
import sys
import urllib.parse
from pathlib import Path

from django.core.management.base import BaseCommand
from django.utils.text import slugify

from environments.models import FrontEnd


def process_name(kind: str, frontend: FrontEnd) -> str:
    return f"{kind}-{slugify(frontend.environment.name)}-{slugify(frontend.name)}"


def agent_command(frontend: FrontEnd, *, python: str = sys.executable) -> str:
    # REDIS_URL, CONSOLE_BASE_URL and AGENT_TOKEN come from the environment honcho passes on.
    return " ".join(
        [
            shlex.quote(python),
            "-m celery -A agent worker",
            f"-Q {shlex.quote(frontend.queue)}",
            f"-n {shlex.quote(process_name('agent', frontend))}@%h",
            "-c 1 --without-gossip --without-mingle -l info",
        ]
    )


def frontend_server_command(
    frontend: FrontEnd, *, python: str = sys.executable, dsn_file: str | None = None
) -> str | None:
    url = urllib.parse.urlsplit(frontend.base_url)
    if not url.hostname:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    app = f"frontend_server:make_app({frontend.releases_root!r})"
    return " ".join(
        ([f"env LIFETIME_APP_DB_DSN_FILE={shlex.quote(dsn_file)}"] if dsn_file else [])
        + [
            shlex.quote(python),
            "-m gunicorn -k gthread --threads 8 -w 2",
            f"-b {shlex.quote(f'{url.hostname}:{port}')}",
            shlex.quote(app),
        ]
    )


class Command(BaseCommand):
    help = "Print honcho Procfile lines for the agent and front-end server of every enabled front-end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--environment", help="Only the front-ends of this environment (name).")
        parser.add_argument("--python", default=sys.executable, help="Interpreter that runs them.")
        parser.add_argument(
            "--dsn-dir",
            help="Write each environment's application database connection to DIR/<environment>.dsn "
            "(mode 0600) and hand it to its front-end servers, so that applications can read their tables.",
        )

    def handle(self, *args, **options) -> None:
        frontends = FrontEnd.objects.filter(enabled=True).select_related("environment")
        if options["environment"]:
            frontends = frontends.filter(environment__name=options["environment"])
        dsn_files: dict[int, str] = {}
        if options["dsn_dir"]:
            folder = Path(options["dsn_dir"])
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            for environment in {fe.environment for fe in frontends}:
                if environment.has_app_db:
                    path = folder / f"{slugify(environment.name)}.dsn"
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as handle:
                        handle.write(environment.app_db_dsn())
                    dsn_files[environment.pk] = str(path.resolve())
        for frontend in frontends:
            self.stdout.write(f"{process_name('agent', frontend)}: {agent_command(frontend, python=options['python'])}")
            server = frontend_server_command(
                frontend, python=options["python"], dsn_file=dsn_files.get(frontend.environment_id)
            )
            if server is None:
                self.stderr.write(f"{frontend}: no base URL, so no front-end server line (set one to serve it).")
                continue
            self.stdout.write(f"{process_name('frontend', frontend)}: {server}")
