# Tiny CPU variant of ProSeCo for tests, demos and benchmarks on the toy set
# (tools/make_toy_coco.py). Same method as
# proseco_deformable-detr_r50_coco.py (whose sources apply); only the sizes
# are shrunk: ResNet-18, 64-d transformer with 1 encoder + 1 decoder layer,
# 20 queries, 96 px views, batch 4, no frozen backbone stages (random init,
# no SwAV download).
_base_ = ['./proseco_deformable-detr_r50_coco.py']

num_queries = 20
embed_dims = 64
data_root = 'data/toy_coco/'
proposal_file = data_root + 'proposals/train'
img_size = 96
num_ss_boxes = 10

model = dict(
    detector=dict(
        num_queries=num_queries,
        backbone=dict(
            depth=18,
            frozen_stages=-1,
            norm_eval=False,
            norm_cfg=dict(type='BN', requires_grad=True),
            init_cfg=None),
        neck=dict(
            in_channels=[128, 256, 512],
            out_channels=embed_dims,
            norm_cfg=dict(type='GN', num_groups=8)),
        encoder=dict(
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=embed_dims, num_heads=4, num_points=2),
                ffn_cfg=dict(
                    embed_dims=embed_dims,
                    feedforward_channels=128,
                    ffn_drop=0.0))),
        decoder=dict(
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=embed_dims, num_heads=4, dropout=0.0),
                cross_attn_cfg=dict(
                    embed_dims=embed_dims, num_heads=4, num_points=2),
                ffn_cfg=dict(
                    embed_dims=embed_dims,
                    feedforward_channels=128,
                    ffn_drop=0.0))),
        positional_encoding=dict(num_feats=embed_dims // 2),
        bbox_head=dict(embed_dims=embed_dims, sync_cls_avg_factor=False)),
    neck=dict(in_channels=embed_dims, hid_channels=64, out_channels=64),
    # a faster-moving teacher for runs of a few hundred iterations
    momentum=0.01)

# the parent's pipeline (../_base_/datasets/coco_regions_weak-strong.py)
# on the toy store, with a milder crop and K = num_ss_boxes
train_pipeline = [
    _base_.train_pipeline[0],
    dict(_base_.train_pipeline[1], proposal_file=proposal_file),
    dict(
        _base_.train_pipeline[2], scale=img_size, crop_ratio_range=(0.5, 1.0)),
    _base_.train_pipeline[3],
    dict(_base_.train_pipeline[4], max_regions=num_ss_boxes),
    *_base_.train_pipeline[5:],
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=2e-4))
# iteration-based like the other toy configs: checkpoints every few
# iterations and an exact mid-run resume (an epoch-based loop restarts the
# interrupted epoch)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=20)
param_scheduler = []
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(
        type='CheckpointHook', interval=10, by_epoch=False, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=4)
