# PLRC (Bai et al., "Point-Level Region Contrast for Object Detection
# Pre-Training", CVPR 2022) on COCO train2017 images.
# Sources: the official code facebookresearch/PLRC (ImageNet only):
# `main_plrc.py` [main], `PLRC/models/builder.py` [builder],
# `PLRC/models/plrc_loss.py` [loss], `PLRC/models/resnet.py` [resnet],
# `PLRC/datasets/imagenet.py` [data]; /work/shared/design/methods.md sec. 2.
# Regions: the official 4x4 grid. Write the grid store once with
#   python tools/generate_proposals.py ... --method grid --grid-sizes 4
# into data/coco/proposals/train2017_grid4 (or point `proposal_file` to a
# selective-search store: PLRC accepts any region source).
_base_ = [
    '../_base_/datasets/coco_regions_2view.py',
    '../_base_/default_runtime.py',
]

proposal_file = 'data/coco/proposals/train2017_grid4'

model = dict(
    type='PLRC',
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=50,  # [resnet] resnet50
        in_channels=3,
        out_indices=(3, ),  # C5 (7x7 at 224 px) [resnet]
        norm_cfg=dict(type='SyncBN'),
        zero_init_residual=True),  # [resnet] last BN of each block zeroed
    img_neck=dict(
        type='mmpretrain.MoCoV2Neck',  # [resnet] fcs: 2048-2048-128 MLP
        in_channels=2048,
        hid_channels=2048,
        out_channels=128,
        with_avg_pool=True),
    point_neck=dict(
        type='PointProjNeck',  # [resnet] fcs, per point
        in_channels=2048,
        hid_channels=2048,
        out_channels=128),
    dino_head=dict(
        type='DINOProjHead',  # [resnet] ProjHead (fcs_2)
        in_channels=2048,
        hid_channels=2048,  # [resnet] hidden_dim=2048
        bottleneck_channels=256,  # [resnet] bottleneck_dim=256
        num_prototypes=4096,  # [resnet] out_dim=4096
        num_layers=3,  # [resnet] nlayers=3, use_bn=True
        norm_last_layer=True),
    point_sampler=dict(type='RegionPointSampler',
                       num_points=16),  # [builder] keep_point=16
    img_queue_len=65536,  # [loss] Ks=[65536]
    img_feat_dim=128,  # [loss] dim=128
    loss_img=dict(
        type='InfoNCELoss',
        temperature=0.2,  # [loss] NCEAverage T=0.2
        loss_weight=0.7),  # [main] --im_ratio 0.7 (paper's intended use)
    loss_point=dict(
        type='PointInfoNCELoss',
        temperature=0.2,  # [loss] SupConLoss temperature
        base_temperature=0.07,  # [loss] base_temperature
        cross_view_only=False,  # [loss] positives from both views
        loss_weight=0.3),  # [main] --cl_ratio 0.3
    loss_distill=dict(
        type='PointAffinityDistillationLoss',
        student_temp=0.1,  # [loss] SelfDistillation student_temp
        teacher_temp=0.07,  # [loss] teacher_temp
        warmup_teacher_temp=0.04,  # [loss] warmup_teacher_temp
        warmup_epochs=30,  # [loss] warmup_teacher_temp_epochs (of 100)
        center_momentum=0.9,  # [loss] center_momentum
        loss_weight=0.3),  # [main] --ts_ratio 0.3
    # The release unpacks (loss_image, loss_point) swapped in main_plrc.py and
    # so trains 1.0 * img + 0.21 * point + 0.21 * distill; to reproduce it set
    # loss_img.loss_weight=1.0, loss_point/loss_distill.loss_weight=0.21.
    distill_size=56,  # [builder] mask_size=56
    distill_pos_ratio=0.5,  # [models/utils.py] overlap(pos_ratio=0.5)
    affinity_scale=1. / 128,  # [loss] out_pos_feat_f / 128.0
    # 256 random paired cells per image (the release distils all paired
    # 56x56 cells, ~1-2k per image): an unbiased estimate of the same mean
    # loss (targets still span all 56x56 reference cells) at a fraction of
    # the cost; None reproduces the release (~+50% step time, 4x memory
    # on CPU, benchmarks/benchmark_plrc.py)
    num_distill_points=256,
    max_regions=None,  # regions capped in the pipeline (16 below)
    symmetric=False,  # [builder] one direction: online view 1, teacher view 2
    momentum=0.001,  # [main] --moco-m 0.999 (mmengine convention)
    shuffle_bn=True)  # [builder] _batch_shuffle_ddp

view_pipeline = [
    dict(
        type='RegionRandomResizedCrop',
        scale=224,  # [data] im_size=224
        crop_ratio_range=(0.2, 1.0),  # [data] scale=(0.2, 1.0)
        aspect_ratio_range=(3. / 4., 4. / 3.),  # torchvision default [data]
        max_attempts=10,
        min_kept_ratio=0.,  # [data] a region counts if any pixel is visible
        min_area=16),  # one cell of the 56x56 region map at 224 px [data]
    dict(
        type='mmpretrain.RandomApply',
        transforms=[
            dict(
                type='mmpretrain.ColorJitter',
                brightness=0.4,  # [data] ColorJitter(0.4, 0.4, 0.4, 0.1)
                contrast=0.4,
                saturation=0.4,
                hue=0.1)
        ],
        prob=0.8),  # [data] p=0.8
    dict(
        type='mmpretrain.RandomGrayscale',
        prob=0.2,  # [data] p=0.2
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
    dict(
        type='mmpretrain.GaussianBlur',
        magnitude_range=(0.1, 2.0),  # [data] GaussianBlurSimple([0.1, 2.0])
        magnitude_std='inf',
        prob=0.5),  # [data] p=0.5
    dict(type='RegionRandomFlip', prob=0.5),  # [data] RandomHorizontalFlipCoord
]
# Note: the official pair of crops is re-sampled until they overlap by >= 50%
# [data]; here MultiViewRegions re-samples until a region is in both views.
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),  # skips bad images (counted, logged)
    dict(
        type='LoadProposals',
        proposal_file=proposal_file,
        fallback='grid',  # images missing from the store: the 4x4 grid
        grid_size=4),  # [data] mask_grid_num=4
    dict(
        type='MultiViewRegions',
        num_views=2,
        transforms=[view_pipeline],
        min_regions=1,
        max_tries=10,
        max_regions=16),  # [data] 1 positive + mask_neg_num=15 regions
    dict(type='PackRegionInputs'),
]
train_dataloader = dict(
    batch_size=32,  # [main] 256 over 8 GPUs
    dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='FiniteCheckOptimWrapper',  # skips non-finite steps (counted)
    optimizer=dict(
        type='SGD', lr=0.03, momentum=0.9,
        weight_decay=1e-4))  # [main] lr 0.03, momentum 0.9, wd 1e-4
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=100, by_epoch=True, begin=0,
         end=100)  # [main] adjust_learning_rate: cosine, per epoch
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)  # [main] 100 ep
custom_hooks = [dict(type='PLRCTeacherTempHook')]  # teacher temp warm-up
auto_scale_lr = dict(base_batch_size=256)  # [main] batch 256
