# ProSeCo on an object-level backbone pre-trained by mmregion's PLRC: the
# two-stage recipe of proseco_deformable-detr_r50_ccop-backbone_coco.py
# (see it for the sources) with PLRC as stage 1:
#   1. bash tools/dist_train.sh configs/mmregion/plrc_r50_coco.py 8
#   2. python tools/extract_backbone.py \
#          $(cat work_dirs/plrc_r50_coco/last_checkpoint) \
#          checkpoints/plrc_r50_coco_backbone.pth
#   3. bash tools/dist_train.sh \
#          configs/mmregion/proseco_deformable-detr_r50_plrc-backbone_coco.py 8
# PLRC's online backbone is an mmpretrain ResNet-50 (mmdet ResNet names).
_base_ = ['./proseco_deformable-detr_r50_ccop-backbone_coco.py']

backbone_checkpoint = 'checkpoints/plrc_r50_coco_backbone.pth'

model = dict(
    detector=dict(
        backbone=dict(init_cfg=dict(checkpoint=backbone_checkpoint))))
