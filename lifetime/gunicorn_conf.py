"""gunicorn settings of the console's web process (``gunicorn lifetime.wsgi -c lifetime/gunicorn_conf.py``),
shared by scripts/up.sh and the benchmarks. Environment variables override the sizes."""

from __future__ import annotations

import ipaddress
import os
import sys

# Threads, not more processes: a request of the console mostly waits on PostgreSQL, and every
# process holds its own copy of Django and its own database connections.
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# Longer than the 2 s between two polls of a status page: with gunicorn's default (2 s) the idle
# connection is closed just as the browser sends its next poll on it (connection reset by peer).
keepalive = int(os.environ.get("WEB_KEEPALIVE", "10"))


def _loopback_only(binds: list[str]) -> bool:
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        host = bind.rsplit(":", 1)[0].strip("[]") if ":" in bind else bind
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            if host != "localhost":
                return False
    return True


def on_starting(server) -> None:
    """Refuse to serve the published development keys anywhere but on this host's loopback."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
    from django.conf import settings

    published = getattr(settings, "PUBLISHED_SECRETS_IN_USE", [])
    if published and not _loopback_only(list(server.cfg.bind)):
        server.log.error(
            "Refusing to listen on %s with the published development %s: generate secrets of this "
            "installation (scripts/up.sh keeps its own under .data/secrets/) or bind to 127.0.0.1.",
            ", ".join(server.cfg.bind),
            ", ".join(published),
        )
        sys.exit(1)


def when_ready(server) -> None:
    """Say at start when the Redis the console is given may lose its messages (core.redis_durability)."""
    from django.conf import settings

    from core.redis_durability import durability_problems

    for problem in durability_problems(settings.REDIS_URL):
        server.log.warning("%s", problem)
