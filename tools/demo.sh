#!/usr/bin/env bash
# End-to-end demo on the toy data set, on CPU, in a few minutes:
#   install (if needed) -> toy COCO set -> selective-search proposals ->
#   CCOP pre-training (tiny config) -> backbone export -> Mask R-CNN fine-tune
#   from that backbone AND from random init (same budget) -> both bbox mAPs
#   (one seed each, no interval: a smoke test of the fine-tuning path) ->
#   the comparison that means something at this budget: the region probe
#   of the CCOP backbone against random init on the same test boxes of the
#   hard toy set (10 classes told apart by shape and pattern), with its 99 %
#   interval and p-value. For mean +- std over seeds and every method see
#   tools/benchmark_transfer.py.
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

step "1/8 install what is missing (tools/install.sh ${INSTALL_ARGS[*]:-})"
bash tools/install.sh "${INSTALL_ARGS[@]}"

step "2/8 toy data set -> $DATA"
if [ ! -f "$DATA/annotations/instances_val.json" ]; then
  "$PY" tools/make_toy_coco.py "$DATA"
fi

step "3/8 selective-search proposals (resumable)"
"$PY" tools/generate_proposals.py "$DATA/annotations/instances_train.json" \
  "$DATA/proposals/train" --img-root "$DATA/train" --workers 2

step "4/8 CCOP pre-training (tiny config)"
"$PY" tools/train.py configs/mmregion/ccop_r18_toy.py --work-dir "$WORK/ccop"
CKPT=$(ls -t "$WORK"/ccop/iter_*.pth | head -n 1)

step "5/8 export the backbone of $CKPT"
"$PY" tools/extract_backbone.py "$CKPT" "$WORK/ccop_backbone.pth"

step "6/8 fine-tune Mask R-CNN from it and evaluate on the toy val set"
"$PY" tools/train.py configs/benchmarks/mask-rcnn_r18_fpn_toy.py \
  --work-dir "$WORK/mask-rcnn" \
  --cfg-options "model.backbone.init_cfg.checkpoint=$WORK/ccop_backbone.pth"

step "7/8 the same fine-tuning from random init (the baseline)"
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
      'random init (one seed each, no interval: a smoke test, not a result)')
print(f'  {"metric":<18} {"CCOP":>8} {"scratch":>8} {"diff":>8}')
for k in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
    if k in pre and k in scratch:
        print(f'  {k:<18} {pre[k]:8.4f} {scratch[k]:8.4f} '
              f'{pre[k] - scratch[k]:+8.4f}')
PYEOF

HARD=data/toy_coco_hard
step "8/8 region probe: the CCOP backbone against random init on the hard toy set"
if [ ! -f "$HARD/annotations/instances_val.json" ]; then
  "$PY" tools/make_toy_coco.py "$HARD" --preset hard --num-train 200 \
    --num-val 100 --labeled-frac 0.5
fi
"$PY" tools/analysis_tools/region_probe.py \
  "$HARD/annotations/instances_train_labeled.json" "$HARD/train" \
  "$HARD/annotations/instances_val.json" "$HARD/val" \
  --checkpoint "CCOP=$WORK/ccop_backbone.pth" --out "$WORK/region_probe.json"
echo "[demo] The demo pre-trains 40 iterations of 4 images: read the verdict and"
echo "[demo] the interval above, not the two accuracies. The transfer benchmark"
echo "[demo] (docs/benchmark_transfer.md) pre-trains long enough to measure a gain."
