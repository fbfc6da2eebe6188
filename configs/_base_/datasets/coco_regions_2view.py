# Two-view region-aware pre-training data on COCO train2017 (unlabeled
# images + pre-computed proposals), shared by CCOP, PLRC and ProSeCo.
# Pipeline keys and outputs: docs/design.md sec. 2. The view recipe is
# CCOP's (ChenhongyiYang/CCOP `contrastive_boxes.py` / config `aug_dict`,
# see docs/fidelity.md).
# Proposals: `python tools/generate_proposals.py` -> data/coco/proposals/
_base_ = ['../pipelines/mocov2_photometric.py']

dataset_type = 'RegionDataset'
data_root = 'data/coco/'
proposal_file = data_root + 'proposals/train2017'

# ImageNet mean/std in the 0-255 scale, BGR -> RGB (CCOP: RGB input
# normalised with the ImageNet mean/std; mmpretrain imagenet_bs32_mocov2.py)
data_preprocessor = dict(
    type='mmpretrain.SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

view_pipeline = [
    dict(
        type='RegionRandomResizedCrop',
        scale=224,  # CCOP: 224x224 views
        crop_ratio_range=(0.1, 1.0),  # CCOP: crop scale (0.1, 1.0)
        aspect_ratio_range=(3. / 4., 4. / 3.),  # CCOP: ratio (3/4, 4/3)
        max_attempts=10,
        min_kept_ratio=0.6,  # CCOP part_thr=0.6
        min_area=144,  # CCOP area_thr=144 px^2 (12x12) in the 224 view
        # PIL bilinear, torchvision's RandomResizedCrop in CCOP; mmpretrain's
        # MoCo v2 config sets backend='pillow' too ('cv2': the option)
        backend='pillow'),
    # CCOP: ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8, RandomGrayscale p=0.2,
    # GaussianBlur sigma in (0.1, 2) p=0.5: MoCo v2's block
    # (../pipelines/mocov2_photometric.py) with saturation 0.2
    dict(
        _base_.mocov2_photometric[0],
        transforms=[
            dict(_base_.mocov2_photometric[0].transforms[0], saturation=0.2)
        ]),
    *_base_.mocov2_photometric[1:],
    dict(type='RegionRandomFlip', prob=0.5),  # CCOP: own flip per view
]

train_pipeline = [
    dict(type='LoadImageFromFileSafe'),  # skips bad images (counted, logged)
    dict(
        type='LoadProposals',
        proposal_file=proposal_file,
        topk=100,  # CCOP dataset-side cap max_box_num=100
        fallback='whole_image'),
    dict(
        type='MultiViewRegions',
        num_views=2,
        transforms=[view_pipeline],
        min_regions=1,  # CCOP min_box_num=1
        max_tries=10,  # CCOP max_try=10
        # CCOP datasets/contrastive_boxes.py apply_aug: each view is accepted
        # on its own (>= min_box_num of its boxes kept); 'common' re-draws
        # both views until a region is common to them
        retry='per_view'),
    dict(type='PackRegionInputs'),
]

train_dataloader = dict(
    batch_size=32,  # CCOP: 256 images over 8 GPUs
    num_workers=8,  # mmpretrain imagenet_bs32_mocov2.py
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='mmregion.region_collate'),  # views of equal size
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',  # images[] only
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
