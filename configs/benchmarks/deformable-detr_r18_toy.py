# Tiny Deformable DETR R18 on the toy set (data/toy_coco/): the CPU-sized
# version of deformable-detr_r50_50e_coco.py for the tests, initialised from
# a whole-detector checkpoint with load_from (ProSeCo / DETReg protocol):
#   python tools/train.py configs/benchmarks/deformable-detr_r18_toy.py \
#       --cfg-options load_from=DETECTOR.pth
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

custom_imports = dict(imports=['mmregion'], allow_failed_imports=False)
pretrain_init = 'load_from'
load_from = None

data_root = 'data/toy_coco/'
# mmregion/testing/toy_data.py CATEGORIES (ids 1-4)
metainfo = dict(
    classes=('ellipse', 'rectangle', 'triangle', 'star'),
    palette=[(210, 40, 40), (30, 80, 200), (40, 180, 40), (230, 200, 30)])

# the architecture of configs/mmregion/proseco_deformable-detr_r18_toy.py
# (queries, layers, sampling points), so that its converted checkpoint loads
# as load_from with only the classification branch re-initialised
embed_dims = 64
model = dict(
    num_queries=20,
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(
        in_channels=[128, 256, 512],
        out_channels=embed_dims,
        norm_cfg=dict(type='GN', num_groups=8)),
    encoder=dict(
        num_layers=1,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=4, num_points=2),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128))),
    decoder=dict(
        num_layers=1,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
            cross_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=4, num_points=2),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128))),
    positional_encoding=dict(num_feats=embed_dims // 2),
    bbox_head=dict(num_classes=4, embed_dims=embed_dims),
    test_cfg=dict(max_per_img=20))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoiceResize',
        scales=[(213, 96), (213, 112), (213, 128)],
        keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(213, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
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
    ann_file=data_root + 'annotations/instances_val.json', metric='bbox')
test_evaluator = val_evaluator

max_iters = 30
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[25],
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
