#!/usr/bin/env bash
# Set up .venv with the dev and verl extras (idempotent), then run the whole test suite,
# slow end-to-end tests included. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${EXTRAS:-dev,verl}" bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest -ra "$@"
