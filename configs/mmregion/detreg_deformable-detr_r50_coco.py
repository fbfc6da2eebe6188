# DETReg baseline (Bar et al., CVPR 2022; github amirbar/DETReg @a4b6363):
# localisation on selective-search boxes + object-embedding loss, no
# contrast and no teacher. Same detector, SwAV backbone, data and schedule
# as proseco_deformable-detr_r50_coco.py (see its sources), except what is
# set here. Audit rows: docs/fidelity.md, section ProSeCo / DETReg.
_base_ = ['./proseco_deformable-detr_r50_coco.py']

# DETReg's Hungarian matching: class cost 2 + L1 5 + GIoU 2 (DETReg main.py
# defaults --set_cost_class 2 --set_cost_bbox 5 --set_cost_giou 2), used
# once per step by DETReg for the localisation and the embedding losses:
# the detector's assigner and the head's are the same
detreg_assigner = dict(
    type='mmdet.HungarianAssigner',
    match_costs=[
        dict(type='mmdet.FocalLossCost', weight=2.0),
        dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
    ])

model = dict(
    detector=dict(
        # DETReg's full localisation set: focal objectness (x2, all decoder
        # layers) + L1 5 + GIoU 2, class cost 2 in the matching (DETReg
        # main.py defaults --cls_loss_coef 2 --set_cost_class 2)
        bbox_head=dict(loss_cls=dict(loss_weight=2.0)),
        train_cfg=dict(assigner=detreg_assigner)),
    # DETReg feature_embed = MLP(256, 256, 512, 2): two linear layers
    neck=dict(
        type='ObjectEmbeddingNeck',
        in_channels=256,
        hid_channels=256,
        out_channels=512,  # = channels of R-50 layer2 (C3)
        num_layers=2),
    # no contrast and no teacher: DETReg's object-embedding loss instead
    head=dict(
        _delete_=True,
        type='DETRegHead',
        assigner=detreg_assigner,
        # DETReg object-embedding loss: F.l1_loss(pred, target,
        # reduction='mean') (DETReg models/deformable_detr.py:322), i.e. the
        # element-wise mean over matched boxes x 512 dims: mmdet's L1Loss
        # with its default reduction 'mean' (ProSeCo calls it without
        # avg_factor); weight 1 (DETReg --object_embedding_loss_coeff 1)
        loss=dict(type='mmdet.L1Loss', reduction='mean', loss_weight=1.0),
        feat_level=0,  # backbone out_indices[0] = layer2 (C3): DETReg
        # DETReg's target (datasets/selfdet.py, obj_embedding_head=
        # 'intermediate'): each box cropped from the original image
        # (img.crop(box)), resized by torchvision Resize((128, 128)) (PIL
        # bilinear, antialiased), colour-augmented per crop
        # (get_query_transforms: the SimCLR jitter / grayscale / blur of
        # strong_view), then the frozen SwAV layer2, global-average-pooled:
        # target='patch' with KeepSourceRegions + BoxPatches in the pipeline
        # below. Options: 'crop' (RoIAlign of the box in the view, resized
        # to crop_size on the model side) or 'roi' (RoIAlign 7x7 of the
        # full-image C3).
        target='patch',
        crop_size=128,
        roi_size=7),
    # DETReg photometrics: the detector input has no colour augmentation
    # (one view: the shared geometry only); the colour augmentation is the
    # patches' own, drawn per crop (DETReg datasets/selfdet.py)
    num_views=1,
    teacher_view=0,  # unused: no teacher with a DETRegHead
    student_view=0)

# ProSeCo's geometry (512-px RandomResizedCrop, flip), the default; DETReg's
# multi-scale resize: detreg_geometry_pipeline below (docs/fidelity.md)
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
        crop_ratio_range=(0.3, 1.0),  # as ProSeCo (assumed)
        min_kept_ratio=0.5),
    dict(type='RegionRandomFlip', prob=0.5),
    dict(
        type='MultiViewRegions',
        transforms=[[]],
        num_views=1,
        min_regions=0,
        max_regions={{_base_.num_ss_boxes}}),  # DETReg --max_prop 30
    # DETReg get_query_transforms: Resize((128, 128)), ColorJitter(0.4, 0.4,
    # 0.4, 0.1) p=0.8, RandomGrayscale p=0.2, GaussianBlur([.1, 2.]) p=0.5
    dict(type='BoxPatches', size=128, transforms={{_base_.strong_view}}),
    dict(type='PackRegionInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# Option: DETReg's own geometry (datasets/selfdet.py make_self_det_transforms)
# instead of ProSeCo's: flip, then with p = 0.5 each a multi-scale resize
# (short side in 320-480, long side <= 600) or resize to 400/500/600 +
# RandomSizeCrop(384, 600) + the multi-scale resize; images are padded to a
# 608x608 canvas (img_shape keeps their size, the detector masks the rest,
# as DETR's batch padding). Select it with
#   train_dataloader = dict(dataset=dict(pipeline=detreg_geometry_pipeline))
# in a config inheriting this one (docs/fidelity.md, 24.6).
detreg_scales = [320, 336, 352, 368, 400, 416, 432, 448, 464, 480]  # selfdet
detreg_geometry_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    dict(
        type='LoadProposals',
        proposal_file={{_base_.proposal_file}},
        topk=None),
    dict(type='KeepSourceRegions'),
    dict(type='RegionRandomFlip', prob=0.5),  # DETR RandomHorizontalFlip
    dict(
        type='RandomChoice',  # DETR RandomSelect (p = 0.5)
        transforms=[
            [
                dict(
                    type='RegionRandomChoiceResize',
                    scales=detreg_scales,
                    max_size=600)  # RandomResize(scales, max_size=600)
            ],
            [
                dict(type='RegionRandomChoiceResize',
                     scales=[400, 500, 600]),  # RandomResize([400, 500, 600])
                dict(type='RegionRandomSizeCrop', min_size=384,
                     max_size=600),  # RandomSizeCrop(384, 600)
                dict(
                    type='RegionRandomChoiceResize',
                    scales=detreg_scales,
                    max_size=600),
            ],
        ]),
    dict(type='RegionPadToCanvas', size=(608, 608)),  # <= 600 px + rounding
    dict(
        type='MultiViewRegions',
        transforms=[[]],
        num_views=1,
        min_regions=0,
        max_regions={{_base_.num_ss_boxes}}),  # DETReg --max_prop 30
    dict(type='BoxPatches', size=128, transforms={{_base_.strong_view}}),
    dict(type='PackRegionInputs'),
]
