# Faster R-CNN on a half-width ResNet-18 FPN for the transfer benchmark's
# CPU protocol (configs/protocols/transfer_toy_cpu.py; the protocol sets the
# budget, seed, data paths and the backbone's checkpoint). Sized to the
# 128-px hard toy images, whose objects are 11-64 px (median sqrt(wh) 30):
# - anchors fitted to the objects: scales 2 and 4 on strides 4-32 give 8-128
#   px anchors, so every ground-truth box has an anchor with IoU >= 0.3
#   (mmdet's scale 8 on strides 4-64 misses 18.6 % of the objects at 128 px;
#   tools/benchmark_transfer.py measures the share before training);
# - P2-P5 only (P6 anchors, 256-512 px, are bigger than the image);
# - one fixed scale (the images' own), flips;
# - every backbone, random init included, comes with BN statistics
#   recomputed on the same unlabelled images; 'frozen' mode freezes every
#   backbone weight and BN statistic (frozen_stages=4), 'finetune' trains
#   them all, BN included (norm_eval=False: from scratch on the dev split,
#   seed 0, 1200 iterations, 13.9 % AP50 with BN trained vs 8.2 % frozen;
#   docs/benchmark_transfer.md, "The recipe search").
# Alone (the config's data root and backbone path are placeholders):
#   python tools/train.py \
#       configs/benchmarks/faster-rcnn_r18_fpn_transfer-toy.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=BACKBONE.pth
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmregion'], allow_failed_imports=False)
pretrain_init = 'backbone'  # the protocol sets the backbone's checkpoint

data_root = 'data/toy_hard/'
# mmregion/testing/toy_data_hard.py HARD_CATEGORIES (the protocol writes
# the data set's own names here)
num_classes = 10
width = 32  # half-width ResNet-18: C2-C5 have 32-256 channels
image_size = 128

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        depth=18,
        base_channels=width,
        frozen_stages=-1,  # 'finetune'; 'frozen' mode: 4
        norm_eval=False,  # BN trained in 'finetune' mode (see above)
        init_cfg=dict(type='Pretrained', checkpoint='BACKBONE.pth')),
    neck=dict(
        in_channels=[width, 2 * width, 4 * width, 8 * width],
        out_channels=64,
        num_outs=4),  # P2-P5
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(
            type='AnchorGenerator',
            scales=[2, 4],  # 8-128 px on strides 4-32 (mmdet: [8])
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=64, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            in_channels=64, fc_out_channels=256, num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=30)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train_labeled.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=2),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_dev.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_test.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_dev.json',
    metric='bbox')
test_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_test.json',
    metric='bbox')

max_iters = 1000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=250)
# mmdet's rate is 0.02 at batch 16; at batch 4 a linear scaling gives
# 0.005, x2 for a short run; warm-up of 100 iterations
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[800],
        gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        type='mmregion.SafeCheckpointHook',
        by_epoch=False,
        interval=max_iters,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=4)
