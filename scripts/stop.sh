#!/usr/bin/env bash
# Stops what `make up` started, and the private PostgreSQL/Redis that bootstrap started (if any).
#   usage: scripts/stop.sh [--console-only]
set -uo pipefail
cd "$(dirname "$0")/.."
# supervisord stops every process it runs (each one's group, waiting for Celery to finish its task).
if [ -f .run/supervisord.pid ] && kill -0 "$(cat .run/supervisord.pid)" 2>/dev/null; then
  PID=$(cat .run/supervisord.pid)
  kill -TERM "$PID"
  for _ in $(seq 60); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
  echo "stopped the console processes"
fi
if [ -f .run/up.pid ] && kill -0 "$(cat .run/up.pid)" 2>/dev/null; then
  kill -TERM "$(cat .run/up.pid)" 2>/dev/null
fi
rm -f .run/up.pid
[ "${1:-}" = "--console-only" ] && exit 0
if [ -f .data/postgres/postmaster.pid ]; then
  PGBIN=$(cat .data/postgres.bin 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D .data/postgres -m fast stop
  else "$PGBIN/pg_ctl" -D .data/postgres -m fast stop; fi
fi
if [ -f .data/rehearsal/postmaster.pid ]; then
  RHBIN=$(cat .data/rehearsal.bin 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$RHBIN/pg_ctl" -D .data/rehearsal -m fast stop
  else "$RHBIN/pg_ctl" -D .data/rehearsal -m fast stop; fi
fi
if [ -f .data/redis/redis.pid ] && kill -0 "$(cat .data/redis/redis.pid)" 2>/dev/null; then
  kill "$(cat .data/redis/redis.pid)" && echo "stopped the private Redis"
fi
exit 0
