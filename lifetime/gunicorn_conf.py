"""gunicorn settings of the console's web process (``gunicorn lifetime.wsgi -c lifetime/gunicorn_conf.py``),
shared by scripts/up.sh and the benchmarks. Environment variables override the sizes."""

from __future__ import annotations

import os

# Threads, not more processes: a request of the console mostly waits on PostgreSQL, and every
# process holds its own copy of Django and its own database connections.
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# Longer than the 2 s between two polls of a status page: with gunicorn's default (2 s) the idle
# connection is closed just as the browser sends its next poll on it (connection reset by peer).
keepalive = int(os.environ.get("WEB_KEEPALIVE", "10"))
