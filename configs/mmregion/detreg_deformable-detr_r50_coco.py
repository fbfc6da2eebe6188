# DETReg baseline (Bar et al., CVPR 2022; github amirbar/DETReg):
# localisation on selective-search boxes + object-embedding loss, no
# contrast and no teacher. Same detector, data and schedule as
# proseco_deformable-detr_r50_coco.py (see its sources).
#
# Simplification (ours): DETReg's embedding target is the frozen SwAV R-50
# layer2 feature of the 128x128 crop of each box, global-pooled. Here it is
# the RoIAlign (7x7, averaged) of the detector's own frozen backbone level 0
# (C3 = layer2, 512 channels) at the box, computed on the student view and
# detached; with the backbone frozen (as in DETReg) that backbone is the
# initial (SwAV) one. Only the student view (view 1) is used.
_base_ = ['./proseco_deformable-detr_r50_coco.py']

model = dict(
    contrast_loss=None,
    # DETReg object-embedding loss: L1, weight 1 (DETReg --object_embedding
    # _loss_coef 1)
    embed_loss=dict(type='mmdet.L1Loss', loss_weight=1.0),
    # DETReg feature_embed MLP 256 -> 256 -> 512 (3 layers)
    embed_head=dict(
        type='ObjectEmbeddingHead',
        in_channels=256,
        hid_channels=256,
        out_channels=512,  # = channels of R-50 layer2 (C3)
        num_layers=3),
    embed_feat_level=0,  # backbone out_indices[0] = layer2 (C3): DETReg
    embed_roi_size=7)

# DETReg's crop gets SimCLR colour augmentation (no flip): the strong view of
# the base config; the weak view (view 0) is unused.
