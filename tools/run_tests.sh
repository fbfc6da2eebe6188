#!/usr/bin/env bash
# Install the stack if needed (idempotent, seconds when done) and run the tests.
# Usage: bash tools/run_tests.sh [pytest args...]   e.g. -m "not slow"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/install.sh
PY=${PYTHON:-python3}
exec "$PY" -m pytest tests -q -ra --durations=15 -p no:cacheprovider "$@"
