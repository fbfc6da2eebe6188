# PLRC, tiny CPU variant on the toy set (smoke tests, e2e test): ResNet-18,
# 96-px views, small heads and queue, 4x4 grid regions. Full settings and
# their sources: plrc_r50_coco.py.
# Grid regions: generate a grid store with
#   python tools/generate_proposals.py ... --method grid --grid-sizes 4
# into data/toy_coco/proposals/train (images absent from the store fall back
# to the 4x4 grid as well).
_base_ = [
    '../_base_/datasets/toy_regions_2view.py',
    '../_base_/default_runtime.py',
]

data_root = 'data/toy_coco/'
proposal_file = data_root + 'proposals/train'
view_size = 96  # toy (official 224): C5 is 3x3, enough to tell regions apart
width = 32  # toy: ResNet-18 at half width (C5 has 8 * width channels)

model = dict(
    type='PLRC',
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=18,
        base_channels=width,
        in_channels=3,
        out_indices=(3, ),
        norm_cfg=dict(type='BN'),
        zero_init_residual=True),
    img_neck=None,  # image embedding = mean of point_neck (as R-50)
    point_neck=dict(
        type='PointProjNeck',
        in_channels=8 * width,
        hid_channels=128,
        out_channels=32),
    dino_neck=dict(
        type='DINOProjNeck',
        in_channels=8 * width,
        hid_channels=128,
        bottleneck_channels=32,
        num_prototypes=64),
    point_sampler=dict(type='RegionPointSampler', num_points=8),
    regions_per_image=1,  # as R-50 (the release)
    img_queue_len=64,  # toy (official 65536)
    img_feat_dim=32,
    head=dict(
        type='PLRCHead',
        num_prototypes=64,  # = dino_neck.num_prototypes
        loss_img=dict(type='InfoNCELoss', temperature=0.2, loss_weight=0.7),
        loss_point=dict(
            type='PointInfoNCELoss',
            temperature=0.2,
            base_temperature=0.07,
            loss_weight=0.3),
        loss_distill=dict(
            type='PointAffinityDistillationLoss',
            student_temperature=0.1,
            teacher_temperature=0.07,
            warmup_teacher_temperature=0.04,
            warmup_epochs=5,  # toy (official 30 of 100 epochs)
            center_momentum=0.9,
            loss_weight=0.3),
        distill_size=8,  # toy (official 56)
        num_distill_points=32),  # toy: 32 random pairs (R-50: None, all)
    num_views=3,  # view 0, view 1, view 0' (as R-50)
    momentum=0.01,  # toy: EMA keeps 0.99 (official 0.999)
    data_preprocessor=dict(
        type='mmpretrain.SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))

view_pipeline = [
    dict(
        type='RegionRandomResizedCrop',
        scale=view_size,
        crop_ratio_range=(0.2, 1.0),  # PLRC: scale (0.2, 1.0)
        aspect_ratio_range=(3. / 4., 4. / 3.),
        max_attempts=10,
        min_kept_ratio=0.,
        min_area=4,
        backend='pillow'),
    *_base_.mocov2_photometric[:2],  # toy: no blur
    dict(type='RegionRandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),  # skips bad images (counted, logged)
    dict(
        type='LoadProposals',
        proposal_file=proposal_file,
        fallback='grid',
        grid_size=4),
    dict(
        type='MultiViewRegions',
        num_views=3,
        transforms=[view_pipeline],
        region_views=(0, 1),
        overlap_pairs=[(0, 2)],  # view 0' overlaps view 0 by >= 50 %
        min_overlap=0.5,
        overlap_tries=100,
        min_regions=1,
        max_tries=10,
        max_regions=16),
    dict(type='PackRegionInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))

optim_wrapper = dict(
    # stops with a message naming the loss term and iteration when a loss
    # turns NaN/inf (on_nonfinite='skip' skips the step instead, counted)
    type='FiniteCheckOptimWrapper',
    on_nonfinite='raise',
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=20, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20)
custom_hooks = [dict(type='PLRCTeacherTempHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=20, by_epoch=False))
randomness = dict(seed=0, deterministic=False)
