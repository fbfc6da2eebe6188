# Mask R-CNN R50-FPN, 1x, COCO: the detection-transfer protocol of MoCo /
# InfoMin that CCOP and PLRC report (CCOP: detectron2
# benchmarks/detection/configs/coco_R_50_FPN_1x_infomin.yaml; mmselfsup /
# mmpretrain: configs/byol/benchmarks/mask-rcnn_r50_fpn_ms-1x_coco.py).
#
# Initialise the backbone from an mmregion pre-training checkpoint:
#   python tools/extract_backbone.py work_dirs/ccop/epoch_800.pth ccop_r50_backbone.pth  # noqa: E501
#   bash tools/dist_train.sh \
#       configs/benchmarks/mask-rcnn_r50_fpn_ms-1x_coco.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=ccop_r50_backbone.pth
# (tools/benchmark_finetune.py does both for several checkpoints.) Without the
# override the inherited torchvision://resnet50 (supervised ImageNet) init is
# used: the supervised baseline row.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmregion'], allow_failed_imports=False)

# how tools/benchmark_finetune.py initialises from a pre-training checkpoint
pretrain_init = 'backbone'

# SyncBN in backbone, FPN and both RoI heads, every stage trainable and BN
# statistics updated (InfoMin yaml: NORM SyncBN for RESNETS/FPN/ROI heads,
# FREEZE_AT 0; mmselfsup benchmark config: frozen_stages=-1, norm_eval=False,
# Shared4Conv1FCBBoxHead with norm).
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        # InfoMin yaml: ROI_BOX_HEAD NAME FastRCNNConvFCHead, NUM_CONV 4, NUM_FC 1  # noqa: E501
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

# multi-scale training, short side 640-800 (step 32), long side <= 1333
# (InfoMin yaml: MIN_SIZE_TRAIN (640, 672, 704, 736, 768, 800), MAX_SIZE 1333)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736),
                (1333, 768), (1333, 800)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# schedule (inherited from mmdet's schedule_1x): SGD lr 0.02, momentum 0.9,
# wd 1e-4, 16 images (8 GPUs x 2), 12 epochs, steps at 8 and 11 — the
# detectron2 1x (90k iters, batch 16, lr 0.02, steps 60k/80k) in epochs.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmregion's CheckpointHook: atomic writes, the previous checkpoint survives
# a kill during the save (docs/reliability.md sec. 2); mmdet's settings kept
default_hooks = dict(checkpoint=dict(type='mmregion.SafeCheckpointHook'))
