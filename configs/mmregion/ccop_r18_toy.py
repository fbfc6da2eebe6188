# CCOP, tiny CPU variant on the toy set (demo, smoke and e2e tests):
# ResNet-18, a 32-channel FPN, small MLPs and queues, 96-px views, 40
# iterations (~30 s on 2 CPU cores). The queues are short so that they hold
# only real keys after 2-3 iterations (they start as random noise, easy
# negatives, so the loss first rises while they fill) and the total loss
# then falls over the rest of the run. Full settings and their sources: ccop_r50_coco.py.  # noqa: E501
# Data: python tools/make_toy_coco.py data/toy_coco and proposals from
# tools/generate_proposals.py in data/toy_coco/proposals/train.
_base_ = [
    '../_base_/datasets/toy_regions_2view.py',
    '../_base_/schedules/sgd_coslr_toy_iters.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='CCOP',
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=18,  # toy (CCOP: 50)
        in_channels=3,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN'),
        zero_init_residual=False),
    neck=dict(
        type='mmdet.FPN',
        in_channels=[64, 128, 256, 512],
        out_channels=32,  # toy (CCOP: 256)
        num_outs=4,  # P2-P5 as CCOP
        norm_cfg=dict(type='BN')),  # CCOP: BN FPN
    img_neck=dict(
        type='LinearProjNeck',
        in_channels=512,
        hid_channels=128,  # toy (CCOP: 2048)
        out_channels=32,  # toy (CCOP: 128)
        with_avg_pool=True,
        dropout=0.1,  # CCOP
        init_cfg=None),  # toy: PyTorch's default init (CCOP: normal 0.01)
    region_neck=dict(
        type='RoIProjNeck',
        in_channels=32,
        roi_size=7,  # CCOP
        assign_sizes=(48, 96, 192),  # CCOP, scaled to the 96-px views
        ref_size=224,
        hid_channels=128,  # toy (CCOP: 2048)
        out_channels=32,  # toy (CCOP: 128)
        dropout=0.1,  # CCOP
        mlp_init_cfg=None),  # toy: PyTorch's default init (CCOP: 0.01)
    box_jitter=dict(
        type='CurriculumBoxJitter',
        n_jitter=10,  # CCOP
        iou_thr=(0.8, 0.4),  # CCOP
        mag_xy=(0.15, 0.6),  # CCOP
        mag_wh=(0.35, 1.4)),  # CCOP
    img_queue_len=8,  # toy (CCOP: 65536): 2 batches, full after 2 iters
    region_queue_len=64,  # toy (CCOP: 65536): ~2 batches of ~30 regions
    feat_dim=32,
    head=dict(
        type='CCOPHead',
        loss_img=dict(type='InfoNCELoss', temperature=0.2, loss_weight=1.0),
        loss_region=dict(type='InfoNCELoss', temperature=0.2, loss_weight=1.0),
        loss_intra=dict(
            type='IntraImageDiscriminationLoss',
            margin=0.4,
            neg_iou_thr=0.05,
            loss_weight=1.0)),
    momentum=0.01,  # toy: EMA keeps 0.99 (CCOP 0.999) for a short run
    shuffle_bn=True)

custom_hooks = [dict(type='CCOPCurriculumHook')]

# toy: 8 images make 2 batches; an InfiniteSampler avoids the 2-s pause of
# mmengine's IterBasedTrainLoop at every dataloader restart (mmengine's
# recommendation), i.e. every other iteration here
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(
        type='CheckpointHook', interval=20, by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=1)
# fixed seed: the e2e test asserts that the total loss falls (checked with
# seeds 0, 1 and 2; see tests/test_models/test_algorithms/test_ccop_train.py)
randomness = dict(seed=0, deterministic=False)
