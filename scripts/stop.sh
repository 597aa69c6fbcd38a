#!/usr/bin/env bash
# Stops what `make up` started, and the private PostgreSQL/Redis that bootstrap started (if any).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f .run/up.pid ] && kill -0 "$(cat .run/up.pid)" 2>/dev/null; then
  kill -INT "$(cat .run/up.pid)" && echo "stopped the console processes"
  rm -f .run/up.pid
fi
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
