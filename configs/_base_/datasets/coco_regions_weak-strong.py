# Weak/strong two-view region data on COCO train2017 (unlabeled images +
# pre-computed proposals) for ProSeCo and DETReg: one shared geometry (crop,
# flip), then a weak (teacher) and a strong (student) photometric view.
# Sources as in configs/mmregion/proseco_deformable-detr_r50_coco.py
# ("assumed" = our choice where ProSeCo's code is not public; rows of
# docs/fidelity.md, section ProSeCo / DETReg).
_base_ = ['../pipelines/mocov2_photometric.py']

data_root = 'data/coco/'
proposal_file = data_root + 'proposals/train2017'  # tools/generate_proposals.py  # noqa: E501
img_size = 512  # assumed: views must share one size for default_collate
# K random selective-search boxes per image and iteration (ProSeCo: "K
# random boxes"; DETReg --max_prop 30): LoadProposals keeps every stored box
# (topk=None) and MultiViewRegions(max_regions=K) draws K of those still in
# the crop, anew at each iteration (np.random, seeded per worker by
# mmengine, so deterministic under `randomness.seed`). The CCOP-style store
# of tools/generate_proposals.py keeps <= 50 boxes per image; a store with
# more boxes (the DETReg-compatible generation preset, docs/proposals.md)
# makes the draw closer to DETReg's online selective search.
num_ss_boxes = 30  # K: DETReg --max_prop 30 (ProSeCo's K is unverified)

# Photometric augmentation only inside MultiViewRegions (both views share
# the geometry, hence the same boxes). Weak (teacher) view: none but the
# shared geometry (assumed); strong (student) view: MoCo v2 / SimCLR colour
# augmentation (mmpretrain mocov2 config values).
strong_view = _base_.mocov2_photometric
weak_view = []
train_pipeline = [
    dict(type='LoadImageFromFileSafe'),
    # every stored box; K of them are drawn in MultiViewRegions
    dict(type='LoadProposals', proposal_file=proposal_file, topk=None),
    # geometry before the views (shared by teacher and student)
    dict(
        type='RegionRandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.3, 1.0),  # assumed
        min_kept_ratio=0.5),
    dict(type='RegionRandomFlip', prob=0.5),
    dict(
        type='MultiViewRegions',
        transforms=[weak_view, strong_view],
        num_views=2,
        min_regions=0,  # no retry: images without boxes are masked
        max_regions=num_ss_boxes),  # K random boxes per iteration
    dict(type='PackRegionInputs'),
]
train_dataloader = dict(
    # DETReg: 24 images/GPU x 8 GPUs; ProSeCo's batch is unverified (the
    # paper argues smaller batches suffice thanks to 300 proposals/image)
    batch_size=24,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mmregion.region_collate'),
    dataset=dict(
        type='RegionDataset',
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
