#!/usr/bin/env bash
# The whole console with demo data: web (gunicorn), the stage worker, beat, and an agent plus a
# front-end server for every demo front-end, under supervisord (a process that exits is started
# again). Ctrl-C stops them; scripts/stop.sh also stops the private PostgreSQL/Redis that bootstrap
# may have started; scripts/reset.sh brings the demo back to its first state.
set -euo pipefail
cd "$(dirname "$0")/.."
# The settings the last start used (.data/lifetime.env: its database, Redis, keys), unless set here.
if [ -f .data/lifetime.env ]; then
  while IFS='=' read -r name value; do
    [[ "$name" =~ ^[A-Z_][A-Z0-9_]*$ ]] && [ -z "${!name+x}" ] && export "$name=$value"
  done < .data/lifetime.env
fi
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

# The settings of this install, for a new shell: manage.py reads them (a variable set there wins),
# so `.venv/bin/python manage.py create_service_account ...` needs nothing exported by hand.
ENV_FILE=.data/lifetime.env
(umask 077 && cat > "$ENV_FILE" <<ENV
# Written by scripts/up.sh at each start: the settings of this development install, read by manage.py.
LIFETIME_DEV=$LIFETIME_DEV
DATABASE_URL=$DATABASE_URL
REHEARSAL_DATABASE_URL=$REHEARSAL_DATABASE_URL
REDIS_URL=$REDIS_URL
PORT=$PORT
CONSOLE_BASE_URL=$CONSOLE_BASE_URL
OUTBOUND_ALLOWED_NETWORKS=$OUTBOUND_ALLOWED_NETWORKS
SECRET_KEY_FILE=${SECRET_KEY_FILE:-}
FIELD_ENCRYPTION_KEY_FILE=${FIELD_ENCRYPTION_KEY_FILE:-}
AGENT_TOKEN_FILE=${AGENT_TOKEN_FILE:-}
ENV
)
# Keys given as variables (not files) are not written to the file: export them again in a new shell.
sed -i '/^[A-Z_]*_FILE=$/d' "$ENV_FILE"

$PY manage.py load_demo --secrets-dir "$SECRETS"
mkdir -p .run/logs
# Every process under supervisord, which starts again a process that exits and leaves the others
# running (one crashed agent no longer takes the console down).
$PY manage.py supervisor_config --port "$PORT" --secrets-dir "$SECRETS" --run-dir .run > .run/supervisord.conf
.venv/bin/supervisord -c .run/supervisord.conf &
SUPERVISOR=$!
echo $SUPERVISOR > .run/up.pid
trap 'kill -TERM $SUPERVISOR 2>/dev/null; wait $SUPERVISOR; exit 0' INT TERM

cat <<MSG

  LifeTime console: $CONSOLE_BASE_URL/
  Demo sign-ins (password: lifetime-demo):
    admin    infra admin (manages every environment; also Django admin at /admin/)
    release  release manager (deploy on every environment)
    ops      operations (view only)
  Front-ends: Development :8101 :8102, Test :8111 :8112, Production :8121 :8122 (e.g. /hr_core)
  Logs: .run/logs/<process>.log; .venv/bin/supervisorctl -c .run/supervisord.conf status
  A process that exits is started again. Ctrl-C stops the console; scripts/stop.sh also stops a
  private PostgreSQL/Redis; scripts/reset.sh brings the demo back to its first state.

MSG
# The demo baseline goes through the console's own deployments (the first Prepare compiles the
# large example: a minute or two); the console is usable meanwhile.
$PY manage.py seed_demo_deployments || echo "Demo deployments did not finish: see the plans in the console."
wait $SUPERVISOR
