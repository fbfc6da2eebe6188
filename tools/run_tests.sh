#!/usr/bin/env bash
# Install what is missing of the stack (tools/install.sh: keeps every package
# already installed in a supported version, and says what it installs), then
# run the tests.
# Usage: bash tools/run_tests.sh [--no-install] [pytest args...]   e.g. -m "not slow"
#   --no-install (or MMREGION_NO_INSTALL=1): never install; stop if something is missing
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
INSTALL_ARGS=()
if [ "${1:-}" = "--no-install" ]; then
  INSTALL_ARGS+=(--no-install)
  shift
fi
bash tools/install.sh "${INSTALL_ARGS[@]}"
PY=${PYTHON:-python3}
exec "$PY" -m pytest tests -q -ra --durations=15 -p no:cacheprovider "$@"
