# DETReg baseline (Bar et al., CVPR 2022; github amirbar/DETReg @a4b6363):
# localisation on selective-search boxes + object-embedding loss, no
# contrast and no teacher. Same detector, SwAV backbone, data and schedule
# as proseco_deformable-detr_r50_coco.py (see its sources), except what is
# set here. Audit rows: docs/fidelity.md, section ProSeCo / DETReg.
_base_ = ['./proseco_deformable-detr_r50_coco.py']

model = dict(
    detector=dict(
        # DETReg's full localisation set: focal objectness (x2, all decoder
        # layers) + L1 5 + GIoU 2, class cost 2 in the matching (DETReg
        # main.py defaults --cls_loss_coef 2 --set_cost_class 2)
        bbox_head=dict(loss_cls=dict(loss_weight=2.0)),
        train_cfg=dict(
            assigner=dict(match_costs=[
                dict(type='mmdet.FocalLossCost', weight=2.0),
                dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
            ]))),
    contrast_loss=None,
    # DETReg object-embedding loss: F.l1_loss(pred, target, reduction='mean')
    # (DETReg models/deformable_detr.py:322), i.e. the element-wise mean
    # over matched boxes x 512 dims: mmdet's L1Loss with its default
    # reduction 'mean' (ProSeCo calls it without avg_factor); weight 1
    # (DETReg --object_embedding_loss_coeff 1)
    embed_loss=dict(type='mmdet.L1Loss', reduction='mean', loss_weight=1.0),
    # DETReg feature_embed = MLP(256, 256, 512, 2): two linear layers
    embed_head=dict(
        type='ObjectEmbeddingHead',
        in_channels=256,
        hid_channels=256,
        out_channels=512,  # = channels of R-50 layer2 (C3)
        num_layers=2),
    embed_feat_level=0,  # backbone out_indices[0] = layer2 (C3): DETReg
    # DETReg's target: the frozen SwAV layer2 of each box's own crop resized
    # to 128 x 128, global-average-pooled (DETReg datasets/selfdet.py,
    # obj_embedding_head='intermediate'). embed_target='roi' is the cheaper
    # simplification: RoIAlign 7x7 (averaged) of the full-image C3 at the box.
    embed_target='crop',
    embed_crop_size=128,
    embed_roi_size=7,
    # DETReg photometrics: the detector input has no colour augmentation
    # (view 0 = the weak view: shared geometry only), the target crops are
    # colour-jittered (view 1 = the strong view: SimCLR colour jitter,
    # grayscale, blur of the base config). Both views share the geometry,
    # so the boxes are the same. Difference: the jitter is drawn per image
    # here, per crop in DETReg.
    student_view=0,
    embed_target_view=1)
