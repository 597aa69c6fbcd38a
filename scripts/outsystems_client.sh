#!/usr/bin/env bash
# The OutSystems CI/CD client (outsystems-pipeline) in a virtual environment of its own, for the
# test that drives its flows against the console (tests/api/test_outsystems_client.py). It pins
# requests and packaging to versions other than the console's, hence not in requirements.txt.
# scripts/test.sh installs it (through scripts/bootstrap.sh --for-tests); prints its Python.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENT="outsystems-pipeline==0.11.0"
target=.data/outsystems-client
stamp="$target/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$CLIENT" ]; then
  if [ ! -x "$target/bin/python" ]; then
    python3 -m venv "$target"
  fi
  "$target/bin/pip" install --quiet --disable-pip-version-check "$CLIENT"
  echo "$CLIENT" > "$stamp"
fi
echo "$target/bin/python"
