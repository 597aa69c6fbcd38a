#!/usr/bin/env bash
# The whole test suite on a fresh machine: bootstrap (venv, PostgreSQL, Redis, Chromium), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/environments -k window
set -euo pipefail
cd "$(dirname "$0")/.."
export LIFETIME_DEV="${LIFETIME_DEV:-true}"
# Its own Redis database by default, so that a console started with scripts/up.sh on the same
# Redis never picks up the tests' tasks (nor the tests its tasks).
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
# The tests never read the settings a development install keeps for manage.py (.data/lifetime.env).
export LIFETIME_ENV_FILE=
scripts/bootstrap.sh --for-tests
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lifetime}"
export REHEARSAL_DATABASE_URL="${REHEARSAL_DATABASE_URL:-postgres://postgres@127.0.0.1:54329/postgres}"
mkdir -p tests/artifacts
exec .venv/bin/python -m pytest "$@"
