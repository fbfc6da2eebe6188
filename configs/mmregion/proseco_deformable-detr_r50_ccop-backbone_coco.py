# ProSeCo on an object-level backbone pre-trained by mmregion's CCOP: the
# composition ProSeCo argues for (an object-level backbone under
# object-level detector pre-training; poster ablation, 5 % mini-COCO: SwAV
# IN 27.8 vs ProSeCo w/ SCRL IN 28.8) that no public code offers.
# Everything else is proseco_deformable-detr_r50_coco.py.
#
# Two-stage recipe (README, "Two-stage recipe"):
#   1. bash tools/dist_train.sh configs/mmregion/ccop_r50_coco.py 8
#   2. python tools/extract_backbone.py \
#          $(cat work_dirs/ccop_r50_coco/last_checkpoint) \
#          checkpoints/ccop_r50_coco_backbone.pth
#   3. bash tools/dist_train.sh \
#          configs/mmregion/proseco_deformable-detr_r50_ccop-backbone_coco.py 8
#   4. tools/convert_proseco_to_ddetr.py, then a configs/benchmarks/
#      deformable-detr_r50_*.py fine-tune with load_from=<converted>.
# The extracted file holds the online backbone's weights under mmdet ResNet
# names ({'state_dict': {'conv1.weight': ...}}; CCOP's mmpretrain ResNet-50
# has the same names); it becomes the frozen detector backbone. Another
# file: --cfg-options model.detector.backbone.init_cfg.checkpoint=PATH.
_base_ = ['./proseco_deformable-detr_r50_coco.py']

backbone_checkpoint = 'checkpoints/ccop_r50_coco_backbone.pth'

model = dict(
    detector=dict(
        backbone=dict(
            init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint))))
