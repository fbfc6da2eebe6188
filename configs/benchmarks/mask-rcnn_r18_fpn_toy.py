# Tiny Mask R-CNN R18-FPN on the toy set (tools/make_toy_coco.py,
# data/toy_coco/): the CPU-sized version of mask-rcnn_r50_fpn_ms-1x_coco.py
# (same protocol: SyncBN everywhere, all stages trainable, multi-scale
# training), for the demo and the tests. Minutes on a CPU; the numbers mean
# nothing beyond "the pipeline works".
#   python tools/train.py configs/benchmarks/mask-rcnn_r18_fpn_toy.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=BACKBONE.pth
# (BACKBONE.pth from tools/extract_backbone.py; the default path is the one
# tools/demo.sh writes.)
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmregion'], allow_failed_imports=False)
pretrain_init = 'backbone'

data_root = 'data/toy_coco/'
# mmregion/testing/toy_data.py CATEGORIES (ids 1-4)
metainfo = dict(
    classes=('ellipse', 'rectangle', 'triangle', 'star'),
    palette=[(210, 40, 40), (30, 80, 200), (40, 180, 40), (230, 200, 30)])
num_classes = 4

# SyncBN as in the R50 protocol (mmengine reverts it to BN on one process)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        depth=18,
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint='work_dirs/demo/ccop_backbone.pth')),
    neck=dict(
        in_channels=[64, 128, 256, 512], out_channels=64, norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            in_channels=64,
            conv_out_channels=64,
            fc_out_channels=128,
            norm_cfg=norm_cfg,
            num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(
            in_channels=64,
            conv_out_channels=64,
            norm_cfg=norm_cfg,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(max_per_img=20)))

# multi-scale training as in the 640-800 protocol, scaled to 128-px images
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomChoiceResize',
        scales=[(213, 96), (213, 112), (213, 128)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(213, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'])
test_evaluator = val_evaluator

max_iters = 40
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[30],
        gamma=0.1)
]
# mmregion's CheckpointHook: atomic writes, the previous checkpoint survives
# a kill during the save (docs/reliability.md sec. 2)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(
        type='mmregion.SafeCheckpointHook',
        by_epoch=False,
        interval=max_iters,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=2)
