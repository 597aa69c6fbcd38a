#!/usr/bin/env bash
# The whole console with demo data: web (gunicorn), the stage worker, beat, and an agent plus a
# front-end server for every demo front-end. Ctrl-C stops them; scripts/stop.sh also stops the
# private PostgreSQL/Redis that bootstrap may have started.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIFETIME_DEV="${LIFETIME_DEV:-true}"
export PORT="${PORT:-8000}"
export CONSOLE_BASE_URL="${CONSOLE_BASE_URL:-http://127.0.0.1:$PORT}"
scripts/bootstrap.sh
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lifetime}"
export REHEARSAL_DATABASE_URL="${REHEARSAL_DATABASE_URL:-postgres://postgres@127.0.0.1:54329/postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
PY=.venv/bin/python
$PY manage.py load_demo
mkdir -p .run
{
  echo "web: .venv/bin/gunicorn lifetime.wsgi -c lifetime/gunicorn_conf.py -b 127.0.0.1:$PORT --access-logfile - --capture-output"
  echo "stages: .venv/bin/celery -A lifetime worker -Q stages,notifications -c 2 -n stages@%h --loglevel INFO"
  echo "beat: .venv/bin/celery -A lifetime beat --loglevel INFO"
  # An agent and a front-end server per demo front-end; the applications read their tables with
  # the environment's connection, handed over in files only this user can read.
  $PY manage.py frontend_processes --dsn-dir .run/secrets
} > .run/Procfile

.venv/bin/honcho -f .run/Procfile -d . start &
SUPERVISOR=$!
echo $SUPERVISOR > .run/up.pid
trap 'kill -INT $SUPERVISOR 2>/dev/null; wait $SUPERVISOR; exit 0' INT TERM

cat <<MSG

  LifeTime console: $CONSOLE_BASE_URL/
  Demo sign-ins (password: lifetime-demo):
    admin    infra admin (manages every environment; also Django admin at /admin/)
    release  release manager (deploy on every environment)
    ops      operations (view only)
  Front-ends: Development :8101 :8102, Test :8111 :8112, Production :8121 :8122 (e.g. /hr_core)
  Ctrl-C stops the console; scripts/stop.sh also stops a private PostgreSQL/Redis.

MSG
# The demo baseline goes through the console's own deployments (the first Prepare compiles the
# large example: a minute or two); the console is usable meanwhile.
$PY manage.py seed_demo_deployments || echo "Demo deployments did not finish: see the plans in the console."
wait $SUPERVISOR
