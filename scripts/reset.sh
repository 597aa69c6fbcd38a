#!/usr/bin/env bash
# Brings the demo back to its first state, then starts it again as the first `scripts/up.sh` did:
# stops the console's processes, drops the console's data, the demo's application databases and
# roles, the front-ends' folders, the local artifacts and the console's Redis database. The private
# PostgreSQL/Redis keep running and this install's keys (.data/secrets) are kept.
#   usage: scripts/reset.sh [--no-start]
set -euo pipefail
cd "$(dirname "$0")/.."
# The settings the last scripts/up.sh used (its database, Redis, keys), unless set here.
if [ -f .data/lifetime.env ]; then
  while IFS='=' read -r name value; do
    [[ "$name" =~ ^[A-Z_][A-Z0-9_]*$ ]] && [ -z "${!name+x}" ] && export "$name=$value"
  done < .data/lifetime.env
fi
export LIFETIME_DEV="${LIFETIME_DEV:-true}"
scripts/stop.sh --console-only
[ -x .venv/bin/python ] || scripts/bootstrap.sh
.venv/bin/python manage.py reset_demo --yes --secrets-dir .data/secrets
rm -rf .run
[ "${1:-}" = "--no-start" ] && exit 0
exec scripts/up.sh
