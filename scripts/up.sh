#!/usr/bin/env bash
# The whole console with demo data: web (gunicorn), the stage worker, beat, and an agent plus a
# front-end server for every demo front-end. Ctrl-C stops them; scripts/stop.sh also stops the
# private PostgreSQL/Redis that bootstrap may have started.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIFETIME_DEV="${LIFETIME_DEV:-true}"
export PORT="${PORT:-8000}"
export CONSOLE_BASE_URL="${CONSOLE_BASE_URL:-http://127.0.0.1:$PORT}"
# The demo's front-ends, webhooks and health URLs are on this machine: let the console call loopback.
export OUTBOUND_ALLOWED_NETWORKS="${OUTBOUND_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128}"
scripts/bootstrap.sh
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lifetime}"
export REHEARSAL_DATABASE_URL="${REHEARSAL_DATABASE_URL:-postgres://postgres@127.0.0.1:54329/postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
PY=.venv/bin/python

# Secrets of this installation, generated once and kept under .data/secrets/ (mode 0600), instead
# of the development values published with the code. A variable already set wins.
SECRETS=.data/secrets
mkdir -p "$SECRETS" && chmod 700 "$SECRETS"
secret() {  # secret NAME FILE PYTHON-EXPRESSION
  local name=$1 file="$SECRETS/$2"
  if [ ! -s "$file" ]; then
    (umask 077 && $PY -c "import secrets, base64; print($3)" > "$file")
  fi
  if [ -z "${!name:-}" ] && [ -z "$(printenv "${name}_FILE" || true)" ]; then export "${name}_FILE=$(pwd)/$file"; fi
}
secret SECRET_KEY secret-key 'secrets.token_urlsafe(50)'
# The published development key stays as a second, decrypt-only key: secrets an older install wrote
# with it can still be read (saving them again re-encrypts them with the first key).
secret FIELD_ENCRYPTION_KEY field-encryption-key \
  'base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() + ",ZGV2LW9ubHktZmllbGQta2V5LTAxMjM0NTY3ODlhYmM="'
secret AGENT_TOKEN agent-token 'secrets.token_urlsafe(32)'

$PY manage.py load_demo --secrets-dir "$SECRETS"
mkdir -p .run
{
  echo "web: .venv/bin/gunicorn lifetime.wsgi -c lifetime/gunicorn_conf.py -b 127.0.0.1:$PORT --access-logfile - --capture-output"
  echo "stages: .venv/bin/celery -A lifetime worker -Q stages,notifications -c 2 -n stages@%h --loglevel INFO"
  echo "beat: .venv/bin/celery -A lifetime beat --loglevel INFO"
  # An agent and a front-end server per demo front-end: each agent with its own folder and key, the
  # applications with their environment's application role, handed over in files only this user
  # can read.
  $PY manage.py frontend_processes --secrets-dir "$SECRETS"
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
