#!/usr/bin/env bash
# Install the mmregion stack on a Python 3.11 machine (CPU or CUDA), through
# the lock of the tested versions, requirements/constraints.txt: replaces a
# package outside mmregion's supported range (numpy 2.x, say) by the locked
# version, keeps an in-range stack already installed, installs the rest at
# the locked versions. A second run takes seconds. Details: tools/install.py.
#
# Usage: bash tools/install.sh [--no-install | --dry-run]
#   --no-install  (or MMREGION_NO_INSTALL=1) check only: list what is missing
#                 and exit 1 if anything is, never run pip
#   --dry-run     (or MMREGION_DRY_RUN=1) print every pip command instead of
#                 running it
# Env:   PYTHON=python3.11   interpreter to install into
#        FORCE_CUDA=1  build mmcv's CUDA ops (default: 1 when nvcc + a GPU are found)
#        MAX_JOBS=N    parallel compile jobs for mmcv (default: nproc)
set -euo pipefail
PY=${PYTHON:-python3}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;; esac
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 9) else 1)' \
  || { echo "[install] ERROR: Python >= 3.9 required (3.11 is the tested version)" >&2; exit 1; }
exec "$PY" "$ROOT/tools/install.py" "$@"
