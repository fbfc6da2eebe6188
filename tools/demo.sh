#!/usr/bin/env bash
# End-to-end demo on the toy data set, on CPU, in a few minutes:
#   install (if needed) -> toy COCO set -> selective-search proposals ->
#   CCOP pre-training (tiny config) -> backbone export -> Mask R-CNN fine-tune
#   -> bbox mAP on the toy val set.
# Usage: bash tools/demo.sh [--no-install] [WORK_DIR]   (default: work_dirs/demo)
#   Step 1 installs only what is missing (tools/install.sh keeps packages
#   already installed in a supported version and says what it installs);
#   --no-install (or MMREGION_NO_INSTALL=1) never installs: it stops if
#   something is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
INSTALL_ARGS=()
if [ "${1:-}" = "--no-install" ]; then
  INSTALL_ARGS+=(--no-install)
  shift
fi
WORK=${1:-work_dirs/demo}
PY=${PYTHON:-python3}
DATA=data/toy_coco
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

step() { printf '\n==== [demo] %s\n' "$*"; }

step "1/6 install what is missing (tools/install.sh ${INSTALL_ARGS[*]:-})"
bash tools/install.sh "${INSTALL_ARGS[@]}"

step "2/6 toy data set -> $DATA"
if [ ! -f "$DATA/annotations/instances_val.json" ]; then
  "$PY" tools/make_toy_coco.py "$DATA"
fi

step "3/6 selective-search proposals (resumable)"
"$PY" tools/generate_proposals.py "$DATA/annotations/instances_train.json" \
  "$DATA/proposals/train" --img-root "$DATA/train" --workers 2

step "4/6 CCOP pre-training (tiny config)"
"$PY" tools/train.py configs/mmregion/ccop_r18_toy.py --work-dir "$WORK/ccop"
CKPT=$(ls -t "$WORK"/ccop/iter_*.pth | head -n 1)

step "5/6 export the backbone of $CKPT"
"$PY" tools/extract_backbone.py "$CKPT" "$WORK/ccop_backbone.pth"

step "6/6 fine-tune Mask R-CNN from it and evaluate on the toy val set"
"$PY" tools/train.py configs/benchmarks/mask-rcnn_r18_fpn_toy.py \
  --work-dir "$WORK/mask-rcnn" \
  --cfg-options "model.backbone.init_cfg.checkpoint=$WORK/ccop_backbone.pth"

"$PY" - "$WORK/mask-rcnn" <<'PYEOF'
import glob, json, os, sys
logs = sorted(glob.glob(os.path.join(sys.argv[1], '*', 'vis_data', 'scalars.json')))
metrics = {}
for line in open(logs[-1]):
    rec = json.loads(line)
    metrics.update({k: v for k, v in rec.items() if k.startswith('coco/')})
print('\n==== [demo] fine-tuned on the toy set (Mask R-CNN from CCOP backbone)')
for k in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
    if k in metrics:
        print(f'  {k:<18} {metrics[k]:.4f}')
if 'coco/bbox_mAP' not in metrics:
    sys.exit('demo: no bbox mAP found in ' + logs[-1])
PYEOF
