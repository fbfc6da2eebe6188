# Tiny CPU variant of DETReg for tests, demos and benchmarks on the toy set
# (tools/make_toy_coco.py). Same method as detreg_deformable-detr_r50_coco.py
# (whose sources apply) on the detector of
# proseco_deformable-detr_r18_toy.py (ResNet-18, 64-d transformer with 1
# encoder + 1 decoder layer, 20 queries, 96 px views, batch 4, random init);
# only the sizes are shrunk: 32 px target patches (DETReg: 128).
_base_ = ['./proseco_deformable-detr_r18_toy.py']

patch_size = 32  # toy size (DETReg Resize((128, 128)))
# DETReg's Hungarian matching (class 2, L1 5, GIoU 2: DETReg main.py), for
# the localisation and the embedding losses alike
detreg_assigner = dict(
    type='mmdet.HungarianAssigner',
    match_costs=[
        dict(type='mmdet.FocalLossCost', weight=2.0),
        dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
    ])

model = dict(
    detector=dict(
        # DETReg's focal objectness x2 (main.py --cls_loss_coef 2)
        bbox_head=dict(loss_cls=dict(loss_weight=2.0)),
        train_cfg=dict(assigner=detreg_assigner)),
    # DETReg feature_embed MLP(embed_dims, 256, C3, 2), hidden width shrunk
    neck=dict(out_channels=128),  # = channels of ResNet-18 layer2 (C3)
    head=dict(
        _delete_=True,
        type='DETRegHead',
        assigner=detreg_assigner,
        # DETReg F.l1_loss(pred, target, reduction='mean'), weight 1
        loss=dict(type='mmdet.L1Loss', reduction='mean', loss_weight=1.0),
        feat_level=0,  # layer2 (C3): DETReg
        target='patch'),  # DETReg's per-box patches (BoxPatches below)
    # DETReg photometrics: one view, colour augmentation on the patches
    num_views=1,
    teacher_view=0,  # unused: no teacher with a DETRegHead
    student_view=0)

train_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    dict(
        type='LoadProposals',
        proposal_file={{_base_.proposal_file}},
        topk=None),
    dict(type='KeepSourceRegions'),  # the image and boxes as loaded
    dict(
        type='RegionRandomResizedCrop',
        scale={{_base_.img_size}},
        crop_ratio_range=(0.5, 1.0),
        min_kept_ratio=0.5),
    dict(type='RegionRandomFlip', prob=0.5),
    dict(
        type='MultiViewRegions',
        transforms=[[]],
        num_views=1,
        min_regions=0,
        max_regions={{_base_.num_ss_boxes}}),
    # DETReg get_query_transforms (the SimCLR jitter / grayscale / blur)
    dict(
        type='BoxPatches', size=patch_size, transforms={{_base_.strong_view}}),
    dict(type='PackRegionInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
