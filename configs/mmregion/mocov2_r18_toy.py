# MoCo v2 (mmpretrain's implementation) on the toy set: the image-level
# baseline the region-level methods are compared with, in the toy setting.
# Also the smallest config that exercises the whole training loop (resume tests).  # noqa: E501
_base_ = [
    '../_base_/pipelines/mocov2_photometric.py', '../_base_/default_runtime.py'
]

data_root = 'data/toy_coco/'
view_size = 64

model = dict(
    type='mmpretrain.MoCo',
    queue_len=64,  # MoCo v2: 65536; tiny for the toy set
    feat_dim=32,  # MoCo v2: 128
    momentum=0.01,  # mmengine convention: EMA keeps 0.99 of the old weights
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=18,
        in_channels=3,
        out_indices=[3],
        norm_cfg=dict(type='BN'),
        zero_init_residual=False),
    neck=dict(
        type='mmpretrain.MoCoV2Neck',
        in_channels=512,
        hid_channels=128,
        out_channels=32,
        with_avg_pool=True),
    head=dict(
        type='mmpretrain.ContrastiveHead',
        loss=dict(type='mmpretrain.CrossEntropyLoss'),
        temperature=0.2),
    data_preprocessor=dict(
        type='mmpretrain.SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))

view_pipeline = [
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=view_size,
        crop_ratio_range=(0.2, 1.),
        backend='pillow'),
    *_base_.mocov2_photometric[:2],  # toy: no blur
    dict(type='mmpretrain.RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    dict(type='mmpretrain.MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='mmpretrain.PackInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mmregion.region_collate'),
    dataset=dict(
        type='mmpretrain.CustomDataset',
        data_root=data_root,
        data_prefix='train',
        with_label=False,
        pipeline=train_pipeline))

optim_wrapper = dict(
    # stops with a message naming the loss and iteration when a loss turns
    # NaN/inf (on_nonfinite='skip' skips the step instead)
    type='FiniteCheckOptimWrapper',
    on_nonfinite='raise',
    optimizer=dict(type='SGD', lr=0.03, weight_decay=1e-4, momentum=0.9))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=20, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(
        type='CheckpointHook', interval=5, by_epoch=False, max_keep_ckpts=3))
randomness = dict(seed=0, deterministic=False)
