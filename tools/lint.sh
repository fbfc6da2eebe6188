#!/usr/bin/env bash
# Lint gate of CI (.ci/run) and for local use: flake8, isort and yapf with the
# settings in setup.cfg ([flake8], [isort], [yapf]); the same checks as
# .pre-commit-config.yaml, with the pip-installed linters pinned in
# requirements/lint.txt (no network needed). Checks only, never rewrites.
# Usage: bash tools/lint.sh [paths...]
#   default paths: mmregion tools tests configs benchmarks setup.py
#   fix locally:   isort <paths> && yapf -i -r <paths>   (then re-run this)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
if [ "$#" -gt 0 ]; then
  PATHS=("$@")
else
  PATHS=(mmregion tools tests configs benchmarks setup.py)
fi
status=0
run() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    echo "!! $name failed" >&2
    status=1
  fi
}
run flake8 "$PY" -m flake8 --extend-exclude tests/data "${PATHS[@]}"
run isort "$PY" -m isort --check-only --diff --settings-path setup.cfg \
  --extend-skip-glob 'tests/data/*' "${PATHS[@]}"
# yapf --diff exits non-zero when a file would change
run yapf "$PY" -m yapf --diff -r --style setup.cfg \
  --exclude 'tests/data/**' "${PATHS[@]}"
if [ "$status" -eq 0 ]; then
  echo "lint: OK"
else
  echo "lint: FAILED (see above)" >&2
fi
exit "$status"
