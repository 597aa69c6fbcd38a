"""Print a supervisord configuration that runs the whole console on one machine (``scripts/up.sh``):
the web console (gunicorn), the stage worker, beat, and an agent plus a front-end server for every
enabled front-end in the console's database.

    python manage.py supervisor_config --port 8000 --secrets-dir .data/secrets --run-dir .run > .run/supervisord.conf
    .venv/bin/supervisord -c .run/supervisord.conf

A process that exits is started again by supervisord (``autorestart``) and the others keep running;
Ctrl-C (or SIGTERM) to supervisord stops them all. Each process logs to ``RUN_DIR/logs/<name>.log``;
``supervisorctl -c RUN_DIR/supervisord.conf status`` lists them. The settings (database, Redis,
keys) come from supervisord's own environment, which every process inherits; each agent's key and
each environment's applications' connection are handed over in files (``--secrets-dir``).
"""

from __future__ import annotations

import shlex
import sys
import urllib.parse
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from environments.management.commands.frontend_processes import _write_secret, process_name
from environments.models import FrontEnd


def _escape(value: str) -> str:
    # supervisord expands %(name)s in its values: a literal % is written %%.
    return value.replace("%", "%%")


def _environment(values: dict[str, str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in values.items())


class Command(BaseCommand):
    help = "Print a supervisord configuration for the console, its workers and every enabled front-end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Port of the web console (on 127.0.0.1).")
        parser.add_argument("--run-dir", default=str(Path(settings.BASE_DIR) / ".run"), help="Socket, pid, logs.")
        parser.add_argument("--python", default=sys.executable, help="Interpreter that runs every process.")
        parser.add_argument(
            "--secrets-dir",
            help="Write each agent's key to DIR/agent-<environment>-<front-end>.key (mode 0600) and hand it over; "
            "hand DIR/<environment>.app.dsn, when it exists, to the environment's front-end servers.",
        )
        parser.add_argument("--stage-workers", type=int, default=1, help="Stage worker processes (each -c 2).")

    def handle(self, *args, **options) -> None:
        run_dir = Path(options["run_dir"]).resolve()
        python = options["python"]
        bin_dir = Path(python).parent
        repo = Path(settings.BASE_DIR).resolve()
        secrets = Path(options["secrets_dir"]).resolve() if options["secrets_dir"] else None
        if secrets is not None:
            secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        out = self.stdout
        out.write(
            "\n".join(
                [
                    "; Written by `manage.py supervisor_config` (scripts/up.sh): edits are lost at the next start.",
                    "[supervisord]",
                    "nodaemon=true",
                    f"logfile={run_dir / 'supervisord.log'}",
                    "logfile_maxbytes=10MB",
                    f"pidfile={run_dir / 'supervisord.pid'}",
                    f"childlogdir={run_dir / 'logs'}",
                    f"directory={repo}",
                    "",
                    "[unix_http_server]",
                    f"file={run_dir / 'supervisor.sock'}",
                    "chmod=0700",
                    "",
                    "[supervisorctl]",
                    f"serverurl=unix://{run_dir / 'supervisor.sock'}",
                    "",
                    "[rpcinterface:supervisor]",
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
                    "",
                ]
            )
        )
        programs: list[tuple[str, str, dict[str, str]]] = [
            (
                "web",
                f"{bin_dir / 'gunicorn'} lifetime.wsgi -c lifetime/gunicorn_conf.py -b 127.0.0.1:{options['port']}"
                " --access-logfile - --capture-output",
                {},
            )
        ]
        for number in range(1, options["stage_workers"] + 1):
            name = "stages" if number == 1 else f"stages-{number}"
            programs.append(
                (
                    name,
                    f"{bin_dir / 'celery'} -A lifetime worker -Q stages,notifications -c 2 -n {name}@%h --loglevel INFO",
                    {},
                )
            )
        programs.append(("beat", f"{bin_dir / 'celery'} -A lifetime beat --loglevel INFO", {}))
        for frontend in FrontEnd.objects.filter(enabled=True).select_related("environment").order_by("pk"):
            agent_env = {"AGENT_RELEASES_ROOT": frontend.releases_root, "AGENT_QUEUE": frontend.queue}
            server_env = {"LIFETIME_RELEASES_ROOT": frontend.releases_root}
            if secrets is not None:
                agent_env["AGENT_KEY_FILE"] = _write_secret(
                    secrets / f"{process_name('agent', frontend)}.key", frontend.agent_key()
                )
                dsn = secrets / f"{frontend.environment.name.lower()}.app.dsn"
                if dsn.is_file():
                    server_env["LIFETIME_APP_DB_DSN_FILE"] = str(dsn)
            if not frontend.has_agent_key:
                self.stderr.write(f"{frontend}: no agent key (generate one on its page): its agent will not start.")
            programs.append((process_name("agent", frontend), f"{shlex.quote(python)} -m agent run", agent_env))
            url = urllib.parse.urlsplit(frontend.base_url)
            if not url.hostname:
                self.stderr.write(f"{frontend}: no base URL, so no front-end server (set one to serve it).")
                continue
            port = url.port or (443 if url.scheme == "https" else 80)
            programs.append(
                (
                    process_name("frontend", frontend),
                    f"{shlex.quote(python)} -m frontend_server --bind {url.hostname}:{port}",
                    server_env,
                )
            )
        for name, command, environment in programs:
            lines = [
                "",
                f"[program:{name}]",
                f"command={_escape(command)}",
                f"directory={repo}",
                "autostart=true",
                # A process that exits, whatever its exit code, is started again; the others go on.
                "autorestart=true",
                "startsecs=2",
                "startretries=10",
                # Celery finishes its task on SIGTERM; its children and gunicorn's go with it.
                "stopsignal=TERM",
                "stopwaitsecs=30",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={run_dir / 'logs' / f'{name}.log'}",
                "stdout_logfile_maxbytes=10MB",
                "stdout_logfile_backups=2",
            ]
            if environment:
                lines.append(f"environment={_environment(environment)}")
            out.write("\n".join(lines))
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
