#!/usr/bin/env bash
# The whole test suite on a fresh machine: bootstrap (venv, PostgreSQL, Redis, Chromium), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/environments -k window
set -euo pipefail
cd "$(dirname "$0")/.."
export LIFETIME_DEV="${LIFETIME_DEV:-true}"
scripts/bootstrap.sh --for-tests
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lifetime}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
mkdir -p tests/artifacts
exec .venv/bin/python -m pytest "$@"
