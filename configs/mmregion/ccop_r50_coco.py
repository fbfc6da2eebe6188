# CCOP (Yang, Huang, Crowley, "Contrastive Object-level Pre-training with
# Spatial Noise Curriculum Learning", arXiv 2111.13651): ResNet-50 + BN-FPN
# on COCO train2017 with selective-search proposals, 800 epochs.
# Source of every value: github ChenhongyiYang/CCOP
# configs/selfsup/ccop/r50_d2.py ("r50_d2") and openselfsup/models/ccop.py
# ("ccop.py"); audit against it: docs/fidelity.md.
# Proposals: python tools/generate_proposals.py ... -> data/coco/proposals/
_base_ = [
    '../_base_/datasets/coco_regions_2view.py',
    '../_base_/schedules/sgd_coslr_800e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='CCOP',
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=50,  # r50_d2 RESNETS.DEPTH=50
        in_channels=3,
        out_indices=(0, 1, 2, 3),  # res2-res5 feed the FPN (r50_d2)
        style='pytorch',  # r50_d2 STRIDE_IN_1X1=False (torchvision style)
        norm_cfg=dict(type='BN'),  # r50_d2 RESNETS.NORM='BN'
        frozen_stages=-1,  # r50_d2 FREEZE_AT=0
        zero_init_residual=False),  # MoCo v2 (mmpretrain mocov2 config)
    neck=dict(
        type='mmdet.FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,  # r50_d2 FPN.OUT_CHANNELS=256
        num_outs=4,  # P2-P5 only (r50_d2 ROI_HEADS.IN_FEATURES)
        norm_cfg=dict(type='BN')),  # r50_d2 FPN.NORM='BN', FUSE_TYPE='sum'
    img_neck=dict(
        type='LinearProjNeck',  # r50_d2 img_neck_params (LinearNormNeck)
        in_channels=2048,  # pooled res5
        hid_channels=2048,
        out_channels=128,  # embed_channels=128
        with_avg_pool=True,
        dropout=0.1),  # ccop.py LinearNormNeck dropout_p=0.1, norm=''
    region_neck=dict(
        type='RoIProjNeck',
        in_channels=256,  # FPN channels
        featmap_strides=(4, 8, 16, 32),  # P2-P5
        roi_size=7,  # r50_d2 pooling_sizes=(7, )
        sampling_ratio=0,  # r50_d2 POOLER_SAMPLING_RATIO=0
        aligned=True,  # ccop.py pooler_type='ROIAlignV2'
        assign_sizes=(48, 96, 192),  # r50_d2 pooling_assign_sizes
        ref_size=224,  # (224, 192, 96, 48) for 224-px views
        hid_channels=2048,  # r50_d2 roi_neck_params hid_channels=2048
        out_channels=128,  # embed_channels=128
        dropout=0.1),  # ccop.py LinearNormNeck dropout_p=0.1
    box_jitter=dict(
        type='CurriculumBoxJitter',
        n_jitter=10,  # r50_d2 curr_params n_jitter=10
        iou_thr=(0.8, 0.4),  # r50_d2 curr_params iou_thr=(0.8, 0.4)
        mag_xy=(0.15, 0.6),  # r50_d2 curr_params jit_mag[:2]
        mag_wh=(0.35, 1.4)),  # r50_d2 curr_params jit_mag[2:]
    img_queue_len=65536,  # r50_d2 img_queue_len
    region_queue_len=65536,  # r50_d2 roi_queue_len
    # ccop.py _roi_dequeue_and_enqueue: keys past the end are dropped, the
    # pointer restarts at 0 ('wrap': written at the start instead)
    region_queue_overflow='drop',
    feat_dim=128,
    head=dict(
        type='CCOPHead',
        loss_img=dict(
            type='InfoNCELoss',
            temperature=0.2,  # r50_d2 img_temperature
            loss_weight=1.0),  # OpenSelfSup sums all losses (weight 1)
        loss_region=dict(
            type='InfoNCELoss',
            temperature=0.2,  # r50_d2 roi_temperature
            loss_weight=1.0),
        loss_intra=dict(
            type='IntraImageDiscriminationLoss',
            margin=0.4,  # ccop.py intra_loss margin=0.4
            neg_iou_thr=0.05,  # ccop.py get_iou_mat(...) < 0.05
            loss_weight=1.0)),
    momentum=0.001,  # r50_d2 momentum=0.999, mmengine convention 1 - 0.999
    shuffle_bn=True)  # ccop.py _img_batch_shuffle_ddp

# difficulty = iteration / total iterations, logged as curriculum/*
custom_hooks = [dict(type='CCOPCurriculumHook')]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=50,
                    max_keep_ckpts=3))  # r50_d2 checkpoint_config interval
log_processor = dict(by_epoch=True)
# ParamSchedulers convert_to_iter_based; keys do not need DDP's unused-param
# search (every FPN level stays in the graph, see RoIProjNeck.pool)
randomness = dict(seed=0, deterministic=False)

# CCOP's photometrics are kornia's on the GPU (kornia_transform.py,
# r50_d2.py train_pipeline1), ours mmpretrain's on the CPU (PIL blur kernel
# growing with sigma, multiplicative brightness), the default. For kornia's
# semantics (docs/fidelity.md, 24.6), in view_pipeline of
# ../_base_/datasets/coco_regions_2view.py replace the blur by
#   dict(type='KorniaGaussianBlur', sigma_range=(0.1, 2.0), kernel_size=7,
#        prob=0.5),  # r50_d2 RandomGaussianBlur: fixed 7x7 kernel
# and, in the RandomApply of the colour jitter, set the ColorJitter's
# brightness=0 and put before it
#   dict(type='AdditiveBrightness', brightness=0.4),  # kornia: img + f - 1
# (the jitter's order is then brightness first; kornia draws a random order)
