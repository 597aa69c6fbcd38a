#!/usr/bin/env bash
# Everything a fresh Debian machine with Python 3.11 needs before the console or its tests run:
# a virtualenv with the pinned requirements, PostgreSQL and Redis answering at DATABASE_URL and
# REDIS_URL (private ones started on a data folder inside the project when nothing answers),
# the console's database migrated, static files collected.
#   usage: scripts/bootstrap.sh [--for-tests | --for-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FOR_TESTS=0
FOR_BENCH=0
[ "${1:-}" = "--for-tests" ] && FOR_TESTS=1
[ "${1:-}" = "--for-bench" ] && FOR_BENCH=1

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lifetime}"
# Only manage.py migrate/collectstatic run here: development keys are fine unless real ones are set.
export LIFETIME_DEV="${LIFETIME_DEV:-true}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
DATA="$ROOT/.data"
mkdir -p "$DATA" "$ROOT/var"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Python ------------------------------------------------------------------------------
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
# A fresh Debian root may have no Python at all: Debian's own python3 (3.11 on Debian 12).
command -v "$PYTHON" >/dev/null || apt_install python3 python3-venv
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
STAMP=.venv/.requirements.sha256
WANT=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  say "installing requirements.txt"
  # (Some machines' pip configuration names extra index folders that may not exist: not our noise.)
  quiet() { { grep -v "is ignored: it is neither a file nor a directory" || true; } }
  .venv/bin/pip install -q --upgrade pip 2>&1 | quiet
  .venv/bin/pip install -q -r requirements.txt 2>&1 | quiet
  echo "$WANT" > "$STAMP"
fi
PY=.venv/bin/python

# --- PostgreSQL --------------------------------------------------------------------------
read -r PG_HOST PG_PORT PG_USER PG_DB < <($PY - <<'PYEOF'
import os, urllib.parse as u
p = u.urlparse(os.environ["DATABASE_URL"])
print(p.hostname or "127.0.0.1", p.port or 5432, p.username or "postgres", (p.path or "/lifetime").lstrip("/") or "lifetime")
PYEOF
)
pg_answers() {
  $PY - "$@" <<'PYEOF' 2>/dev/null
import os, sys, psycopg2, urllib.parse as u
p = u.urlparse(os.environ["DATABASE_URL"])
try:
    psycopg2.connect(host=p.hostname, port=p.port or 5432, user=p.username or "postgres",
                     password=p.password, dbname="postgres", connect_timeout=2).close()
except psycopg2.OperationalError as exc:
    # A server that answers but refuses us still "answers": do not start a second one.
    sys.exit(0 if "does not exist" in str(exc) or "authentication" in str(exc) else 1)
PYEOF
}
local_host() { case "$1" in 127.*|localhost|::1) return 0;; *) return 1;; esac; }

if ! pg_answers; then
  local_host "$PG_HOST" || { echo "PostgreSQL at $PG_HOST:$PG_PORT does not answer and is not local" >&2; exit 1; }
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    apt_install postgresql
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
fi
# Installing the package may have started Debian's own cluster at that very address.
if ! pg_answers; then
  PGDATA="$DATA/postgres"
  RUNAS=()
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root: run it as the postgres system user.
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DATA" postgres
    RUNAS=(runuser -u postgres --)
    # The postgres user must be able to reach the data folder.
    d="$DATA"; while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
  fi
  mkdir -p "$PGDATA"
  [ "$(id -u)" -eq 0 ] && chown postgres "$PGDATA" && chmod 700 "$PGDATA"
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "initialising a private PostgreSQL in $PGDATA"
    "${RUNAS[@]}" "$PGBIN/initdb" -D "$PGDATA" -U "$PG_USER" --auth=trust -E UTF8 >/dev/null
  fi
  say "starting private PostgreSQL on $PG_HOST:$PG_PORT"
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=$PG_HOST -k $PGDATA -c max_connections=200" start >/dev/null
  echo "$PGBIN" > "$DATA/postgres.bin"
fi

# --- The rehearsal PostgreSQL --------------------------------------------------------------
# Prepare rehearses a plan's SQL here, on a copy of the target's schema: never on a target's own
# server. A private cluster (same major version as the console's, its own data folder and port)
# is started when nothing answers at REHEARSAL_DATABASE_URL; scripts there run as a role without
# superuser, server-program or server-file rights (the console creates it when missing).
export REHEARSAL_DATABASE_URL="${REHEARSAL_DATABASE_URL:-postgres://postgres@127.0.0.1:54329/postgres}"
read -r RH_HOST RH_PORT RH_USER < <($PY - <<'PYEOF'
import os, urllib.parse as u
p = u.urlparse(os.environ["REHEARSAL_DATABASE_URL"])
print(p.hostname or "127.0.0.1", p.port or 5432, p.username or "postgres")
PYEOF
)
rehearsal_answers() {
  $PY - <<'PYEOF' 2>/dev/null
import os, sys, psycopg2
try:
    psycopg2.connect(os.environ["REHEARSAL_DATABASE_URL"], connect_timeout=2).close()
except psycopg2.OperationalError:
    sys.exit(1)
PYEOF
}
if ! rehearsal_answers; then
  local_host "$RH_HOST" || { echo "The rehearsal PostgreSQL at $RH_HOST:$RH_PORT does not answer and is not local" >&2; exit 1; }
  # The same major version as the server that answers at DATABASE_URL, when its binaries are here.
  PG_MAJOR=$($PY - <<'PYEOF' 2>/dev/null || true
import os, psycopg2, urllib.parse as u
p = u.urlparse(os.environ["DATABASE_URL"])
c = psycopg2.connect(host=p.hostname, port=p.port or 5432, user=p.username or "postgres", password=p.password,
                     dbname="postgres", connect_timeout=2)
print(c.server_version // 10000)
PYEOF
)
  RHBIN=""
  [ -n "$PG_MAJOR" ] && [ -x "/usr/lib/postgresql/$PG_MAJOR/bin/initdb" ] && RHBIN="/usr/lib/postgresql/$PG_MAJOR/bin"
  [ -z "$RHBIN" ] && RHBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$RHBIN" ] || [ ! -x "$RHBIN/initdb" ]; then
    apt_install postgresql
    RHBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  RHDATA="$DATA/rehearsal"
  RUNAS=()
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DATA" postgres
    RUNAS=(runuser -u postgres --)
    d="$DATA"; while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
  fi
  mkdir -p "$RHDATA"
  [ "$(id -u)" -eq 0 ] && chown postgres "$RHDATA" && chmod 700 "$RHDATA"
  if [ ! -f "$RHDATA/PG_VERSION" ]; then
    say "initialising the rehearsal PostgreSQL in $RHDATA"
    "${RUNAS[@]}" "$RHBIN/initdb" -D "$RHDATA" -U "$RH_USER" --auth=trust -E UTF8 >/dev/null
  fi
  say "starting the rehearsal PostgreSQL on $RH_HOST:$RH_PORT"
  "${RUNAS[@]}" "$RHBIN/pg_ctl" -D "$RHDATA" -l "$RHDATA/server.log" -w -t 60 \
    -o "-p $RH_PORT -c listen_addresses=$RH_HOST -k $RHDATA -c max_connections=100" start >/dev/null
  echo "$RHBIN" > "$DATA/rehearsal.bin"
  rehearsal_answers || { echo "The rehearsal PostgreSQL did not start: see $RHDATA/server.log" >&2; exit 1; }
fi

# --- Redis -------------------------------------------------------------------------------
read -r RD_HOST RD_PORT < <($PY - <<'PYEOF'
import os, urllib.parse as u
p = u.urlparse(os.environ["REDIS_URL"])
print(p.hostname or "127.0.0.1", p.port or 6379)
PYEOF
)
redis_answers() { $PY -c 'import os, redis; redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=2).ping()' 2>/dev/null; }
if ! redis_answers; then
  local_host "$RD_HOST" || { echo "Redis at $RD_HOST:$RD_PORT does not answer and is not local" >&2; exit 1; }
  command -v redis-server >/dev/null || apt_install redis-server
fi
if ! redis_answers; then
  mkdir -p "$DATA/redis"
  say "starting private Redis on $RD_HOST:$RD_PORT"
  # Its data survives a restart (append-only file) and is never evicted: a revert waiting for a
  # stopped agent, a queued stage, must not vanish.
  redis-server --daemonize yes --bind "$RD_HOST" --port "$RD_PORT" --dir "$DATA/redis" \
    --pidfile "$DATA/redis/redis.pid" --logfile "$DATA/redis/redis.log" --save "" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction
  for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
  redis_answers || { echo "Redis did not start: see $DATA/redis/redis.log" >&2; exit 1; }
fi

# --- redis-server for the tests that start a Redis of their own (restarted, flushed: faults) ---
if [ "$FOR_TESTS" -eq 1 ] || [ "$FOR_BENCH" -eq 1 ]; then
  command -v redis-server >/dev/null || apt_install redis-server
fi

# --- wrk, the load generator of the status pages' benchmark (make bench) ------------------
if [ "$FOR_BENCH" -eq 1 ] && ! command -v wrk >/dev/null; then
  apt_install wrk
fi

# --- Chromium for the browser tests --------------------------------------------------------
if [ "$FOR_TESTS" -eq 1 ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium fonts-dejavu-core
fi

# --- Node.js for the single sign-on tests' OpenID Connect provider (tests/security/oidc_provider)
if [ "$FOR_TESTS" -eq 1 ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  LOCK=tests/security/oidc_provider/package-lock.json
  STAMP_NODE=tests/security/oidc_provider/node_modules/.lock-installed
  if ! cmp -s "$LOCK" "$STAMP_NODE" 2>/dev/null; then
    say "npm ci (the test OpenID Connect provider)"
    (cd tests/security/oidc_provider && npm ci --no-audit --no-fund --loglevel=error)
    cp "$LOCK" "$STAMP_NODE"
  fi
fi

# --- The OutSystems CI/CD client, run unchanged by tests/api/test_outsystems_client.py ---------
if [ "$FOR_TESTS" -eq 1 ]; then
  if [ "$(cat "$DATA/outsystems-client/.installed" 2>/dev/null)" != "outsystems-pipeline==0.11.0" ]; then
    say "installing the OutSystems CI/CD client (.data/outsystems-client)"
  fi
  "$ROOT/scripts/outsystems_client.sh" >/dev/null
fi

# --- The console's database --------------------------------------------------------------
$PY scripts/ensure_database.py
if [ "$FOR_TESTS" -eq 0 ]; then
  say "migrating $PG_DB"
  $PY manage.py migrate --noinput -v 0
fi
# whitenoise serves from STATIC_ROOT (tests' pages too).
$PY manage.py collectstatic --noinput -v 0
say "PostgreSQL $PG_HOST:$PG_PORT, rehearsal PostgreSQL $RH_HOST:$RH_PORT and Redis $RD_HOST:$RD_PORT ready"
