#!/usr/bin/env bash
# End-to-end demo on the toy data set, on CPU, in a few minutes:
#   install (if needed) -> toy COCO set -> selective-search proposals ->
#   CCOP pre-training (tiny config) -> backbone export -> Mask R-CNN fine-tune
#   from that backbone AND from random init (same budget) -> both bbox mAPs
#   on the toy val set and their difference (one seed each: for mean +- std
#   over seeds and every method see tools/benchmark_transfer.py).
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

step "1/7 install what is missing (tools/install.sh ${INSTALL_ARGS[*]:-})"
bash tools/install.sh "${INSTALL_ARGS[@]}"

step "2/7 toy data set -> $DATA"
if [ ! -f "$DATA/annotations/instances_val.json" ]; then
  "$PY" tools/make_toy_coco.py "$DATA"
fi

step "3/7 selective-search proposals (resumable)"
"$PY" tools/generate_proposals.py "$DATA/annotations/instances_train.json" \
  "$DATA/proposals/train" --img-root "$DATA/train" --workers 2

step "4/7 CCOP pre-training (tiny config)"
"$PY" tools/train.py configs/mmregion/ccop_r18_toy.py --work-dir "$WORK/ccop"
CKPT=$(ls -t "$WORK"/ccop/iter_*.pth | head -n 1)

step "5/7 export the backbone of $CKPT"
"$PY" tools/extract_backbone.py "$CKPT" "$WORK/ccop_backbone.pth"

step "6/7 fine-tune Mask R-CNN from it and evaluate on the toy val set"
"$PY" tools/train.py configs/benchmarks/mask-rcnn_r18_fpn_toy.py \
  --work-dir "$WORK/mask-rcnn" \
  --cfg-options "model.backbone.init_cfg.checkpoint=$WORK/ccop_backbone.pth"

step "7/7 the same fine-tuning from random init (the baseline)"
"$PY" tools/train.py configs/benchmarks/mask-rcnn_r18_fpn_toy.py \
  --work-dir "$WORK/mask-rcnn-scratch" --cfg-options model.backbone.init_cfg=None

"$PY" - "$WORK/mask-rcnn" "$WORK/mask-rcnn-scratch" <<'PYEOF'
import glob, json, os, sys


def final_metrics(work):
    logs = sorted(glob.glob(os.path.join(work, '*', 'vis_data',
                                         'scalars.json')))
    metrics = {}
    for line in open(logs[-1]) if logs else ():
        rec = json.loads(line)
        metrics.update({k: v for k, v in rec.items() if k.startswith('coco/')})
    if 'coco/bbox_mAP' not in metrics:
        sys.exit(f'demo: no bbox mAP found under {work}')
    return metrics


pre, scratch = final_metrics(sys.argv[1]), final_metrics(sys.argv[2])
print('\n==== [demo] Mask R-CNN on the toy set, same budget: CCOP backbone vs '
      'random init')
print(f'  {"metric":<18} {"CCOP":>8} {"scratch":>8} {"diff":>8}')
for k in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
    if k in pre and k in scratch:
        print(f'  {k:<18} {pre[k]:8.4f} {scratch[k]:8.4f} '
              f'{pre[k] - scratch[k]:+8.4f}')
PYEOF
