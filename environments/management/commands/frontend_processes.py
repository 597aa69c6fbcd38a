"""Print Procfile lines (``name: command``, for honcho, foreman and the like) for the agent and the
front-end server of every enabled front-end, to run them beside the console on a laptop with another
process manager (``scripts/up.sh`` uses supervisord: ``manage.py supervisor_config``).

    python manage.py frontend_processes --secrets-dir .data/secrets > var/Procfile.frontends

Each agent gets its own folder and its key (written to ``DIR/agent-<environment>-<front-end>.key``,
mode 0600, never on the command line); each front-end server gets the applications' database
connection of its environment when ``DIR/<environment>.app.dsn`` exists (``load_demo`` writes it),
never the deployment connection.
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


def agent_command(frontend: FrontEnd, *, python: str = sys.executable, key_file: str | None = None) -> str:
    # REDIS_URL, CONSOLE_BASE_URL and AGENT_TOKEN come from the environment the process manager passes on.
    return " ".join(
        [
            "env",
            f"AGENT_RELEASES_ROOT={shlex.quote(frontend.releases_root)}",
            *([f"AGENT_KEY_FILE={shlex.quote(key_file)}"] if key_file else []),
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
    help = "Print Procfile lines for the agent and front-end server of every enabled front-end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--environment", help="Only the front-ends of this environment (name).")
        parser.add_argument("--python", default=sys.executable, help="Interpreter that runs them.")
        parser.add_argument(
            "--secrets-dir",
            "--dsn-dir",
            dest="secrets_dir",
            help="Write each agent's key to DIR/agent-<environment>-<front-end>.key (mode 0600) and hand it to "
            "the agent; hand DIR/<environment>.app.dsn, when it exists, to the environment's front-end servers.",
        )

    def handle(self, *args, **options) -> None:
        frontends = FrontEnd.objects.filter(enabled=True).select_related("environment")
        if options["environment"]:
            frontends = frontends.filter(environment__name=options["environment"])
        folder = Path(options["secrets_dir"]) if options["secrets_dir"] else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for frontend in frontends:
            key_file = dsn_file = None
            if folder is not None:
                key_file = _write_secret(folder / f"{process_name('agent', frontend)}.key", frontend.agent_key())
                app_dsn = folder / f"{frontend.environment.name.lower()}.app.dsn"
                dsn_file = str(app_dsn.resolve()) if app_dsn.is_file() else None
            if not frontend.has_agent_key:
                self.stderr.write(f"{frontend}: no agent key (generate one on its page): its agent will not start.")
            agent = agent_command(frontend, python=options["python"], key_file=key_file)
            self.stdout.write(f"{process_name('agent', frontend)}: {agent}")
            server = frontend_server_command(frontend, python=options["python"], dsn_file=dsn_file)
            if server is None:
                self.stderr.write(f"{frontend}: no base URL, so no front-end server line (set one to serve it).")
                continue
            self.stdout.write(f"{process_name('frontend', frontend)}: {server}")


def _write_secret(path: Path, value: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return str(path.resolve())
