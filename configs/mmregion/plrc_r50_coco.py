# PLRC (Bai et al., "Point-Level Region Contrast for Object Detection
# Pre-Training", CVPR 2022) on COCO train2017 images.
# Sources: the official code facebookresearch/PLRC @5fbd1cb (ImageNet only):
# `main_plrc.py` [main], `PLRC/models/builder.py` [builder],
# `PLRC/models/plrc_loss.py` [loss], `PLRC/models/resnet.py` [resnet],
# `PLRC/datasets/imagenet.py` [data]. Every deviation and its switch:
# docs/fidelity.md (PLRC).
# Regions: the official 4x4 grid. Write the grid store once with
#   python tools/generate_proposals.py ... --method grid --grid-sizes 4
# into data/coco/proposals/train2017_grid4 (or point `proposal_file` to a
# selective-search store: PLRC accepts any region source).
#
# Schedule. The official recipe is ImageNet-1k, 100 epochs at batch 256
# (~500k iterations: 5005 per epoch) [main]; there is no official COCO recipe
# (PLRC issue #4). 100 COCO epochs would be ~46k iterations (462 per epoch),
# 11x fewer. We train 800 COCO epochs (~370k iterations), the COCO
# convention of CCOP and DenseCL; iteration parity with the release would be
# ~1085 epochs. The teacher-temperature warm-up (30 of 100 epochs [loss])
# and the cosine schedule scale with `max_epochs` of the schedule
# (../_base_/schedules/sgd_coslr_800e_plrc.py).
_base_ = [
    '../_base_/datasets/coco_regions_2view.py',
    '../_base_/schedules/sgd_coslr_800e_plrc.py',
    '../_base_/default_runtime.py',
]

proposal_file = 'data/coco/proposals/train2017_grid4'
# [loss] 30 of nepochs=100; max_epochs: see "Schedule" above
warmup_teacher_epochs = _base_.max_epochs * 30 // 100

model = dict(
    type='PLRC',
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=50,  # [resnet] resnet50
        in_channels=3,
        out_indices=(3, ),  # C5 (7x7 at 224 px) [resnet]
        # per-GPU BN as the release (nn.BatchNorm2d, no SyncBN conversion in
        # [main]), so that shuffle-BN matters; dict(type='SyncBN') is the
        # option (it makes shuffle-BN a no-op)
        norm_cfg=dict(type='BN'),
        zero_init_residual=True),  # [resnet] last BN of each block zeroed
    # Image embedding = normalize(mean_hw(point_neck(C5))), the spatial mean
    # of the per-location point projector [builder] L140/L230, so the image
    # loss trains the point head too. The option: a separate projection,
    # img_neck=dict(type='mmpretrain.MoCoV2Neck', in_channels=2048,
    #               hid_channels=2048, out_channels=128, with_avg_pool=True)
    img_neck=None,
    point_neck=dict(
        type='PointProjNeck',  # [resnet] fcs: 2048-2048-128, per location
        in_channels=2048,
        hid_channels=2048,
        out_channels=128),
    dino_neck=dict(
        type='DINOProjNeck',  # [resnet] ProjHead (fcs_2)
        in_channels=2048,
        hid_channels=2048,  # [resnet] hidden_dim=2048
        bottleneck_channels=256,  # [resnet] bottleneck_dim=256
        num_prototypes=4096,  # [resnet] out_dim=4096
        num_layers=3,  # [resnet] nlayers=3, use_bn=True
        norm_last_layer=True),
    point_sampler=dict(type='RegionPointSampler',
                       num_points=16),  # [builder] keep_point=16
    # [data] one common cell per image (random), the points of the other
    # images are its negatives (the 15 sampled "negative" cells are never
    # read by [loss]); None = every common region, the other regions of the
    # same image being negatives too
    regions_per_image=1,
    img_queue_len=65536,  # [loss] Ks=[65536]
    img_feat_dim=128,  # [loss] dim=128
    head=dict(
        type='PLRCHead',
        num_prototypes=4096,  # = dino_neck.num_prototypes ([resnet] out_dim)
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
            student_temperature=0.1,  # [loss] SelfDistillation student_temp
            teacher_temperature=0.07,  # [loss] teacher_temp
            warmup_teacher_temperature=0.04,  # [loss] warmup_teacher_temp
            # [loss] warmup_teacher_temp_epochs=30 of nepochs=100, scaled
            warmup_epochs=warmup_teacher_epochs,
            center_momentum=0.9,  # [loss] center_momentum
            loss_weight=0.3),  # [main] --ts_ratio 0.3
        # The release unpacks (loss_image, loss_point) swapped in
        # main_plrc.py and so trains 1.0 * img + 0.21 * point + 0.21 *
        # distill; to reproduce it set loss_img.loss_weight=1.0,
        # loss_point/loss_distill.loss_weight=0.21.
        distill_size=56,  # [builder] mask_size=56
        # [models/utils.py] overlap(pos_ratio=0.5): every target cell within
        # 0.5 x the larger cell diagonal is a pair ([loss] torch.nonzero)
        distill_pos_ratio=0.5,
        # [data] coord: crop coordinates normalised by the original
        # (W-1, H-1) ('pixels': isotropic original pixels)
        distill_pair_frame='normalized',
        affinity_scale=1. / 128,  # [loss] out_pos_feat_f / 128.0
        # all cell pairs as the release (the mean over all pairs of the
        # batch); an int keeps that many random pairs per image (an unbiased
        # estimate of each image's mean, but every image weighs alike; 256
        # costs less: benchmarks/benchmark_plrc.py)
        num_distill_points=None),
    symmetric=False,  # [builder] one direction: online view 0, teacher view 1
    # three views [builder][data]: student = online view 0, distillation
    # target = momentum view 0' (a companion crop overlapping view 0 by
    # >= 50 %), affinity reference = momentum view 1; num_views=2 (with
    # MultiViewRegions(num_views=2)) is the two-view form, where view 1 is
    # the target and the reference
    num_views=3,
    # [builder] the teacher's heads (DINO head with BatchNorm1d) run on the
    # shuffled batch, inside shuffle-BN; False: on the unshuffled C5
    teacher_heads_in_shuffle=True,
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
        min_area=16,  # one cell of the 56x56 region map at 224 px [data]
        backend='pillow'),  # [data] PIL bilinear (backend='cv2': option)
    # [data] ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8, RandomGrayscale p=0.2,
    # GaussianBlurSimple([0.1, 2.0]) p=0.5: MoCo v2's block
    *_base_.mocov2_photometric,
    dict(type='RegionRandomFlip',
         prob=0.5),  # [data] RandomHorizontalFlipCoord
]
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),  # skips bad images (counted, logged)
    dict(
        type='LoadProposals',
        proposal_file=proposal_file,
        fallback='grid',  # images missing from the store: the 4x4 grid
        grid_size=4),  # [data] mask_grid_num=4
    dict(
        type='MultiViewRegions',
        num_views=3,  # view 0, view 1, view 0' [data] im_multiv(_2)
        transforms=[view_pipeline],  # own crop, flip and colour per view
        region_views=(0, 1),  # regions common to views 0 and 1
        # [data] a view and its companion crop are re-drawn together until
        # they overlap by >= 50 % of the larger one (100 tries)
        overlap_pairs=[(0, 2)],
        min_overlap=0.5,
        overlap_tries=100,
        min_regions=1,
        max_tries=10,
        max_regions=16),  # [data] 1 positive + mask_neg_num=15 regions
    dict(type='PackRegionInputs'),
]
train_dataloader = dict(
    batch_size=32,  # [main] 256 over 8 GPUs
    dataset=dict(pipeline=train_pipeline))

custom_hooks = [dict(type='PLRCTeacherTempHook')]  # teacher temp warm-up
