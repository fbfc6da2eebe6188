# The toy counterpart of coco_regions_2view.py for smoke tests and CPU runs:
# the toy set of docs/design.md sec. 5 (`python tools/make_toy_coco.py
# data/toy_coco`) with proposals from `tools/generate_proposals.py` in
# data/toy_coco/proposals/train. Same recipe, 96-px views, tiny batches.
_base_ = ['./coco_regions_2view.py']

data_root = 'data/toy_coco/'
proposal_file = data_root + 'proposals/train'

view_pipeline = [
    dict(
        type='RegionRandomResizedCrop',
        scale=96,  # toy: 96-px views (CCOP: 224)
        crop_ratio_range=(0.1, 1.0),  # CCOP: crop scale (0.1, 1.0)
        aspect_ratio_range=(3. / 4., 4. / 3.),  # CCOP: ratio (3/4, 4/3)
        max_attempts=10,
        min_kept_ratio=0.6,  # CCOP part_thr=0.6
        min_area=26,  # CCOP 144 px^2 at 224 px, scaled by (96/224)^2
        backend='pillow'),  # PIL bilinear as coco_regions_2view.py
    dict(
        type='mmpretrain.RandomApply',
        transforms=[
            dict(
                type='mmpretrain.ColorJitter',
                brightness=0.4,  # CCOP: ColorJitter(0.4, 0.4, 0.2, 0.1)
                contrast=0.4,
                saturation=0.2,
                hue=0.1)
        ],
        prob=0.8),  # CCOP: p=0.8
    dict(
        type='mmpretrain.RandomGrayscale',
        prob=0.2,  # CCOP: p=0.2
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),  # mmpretrain mocov2 (BGR)
    dict(
        type='mmpretrain.GaussianBlur',
        magnitude_range=(0.1, 2.0),  # CCOP: sigma in (0.1, 2)
        magnitude_std='inf',
        prob=0.5),  # CCOP: p=0.5
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
        max_tries=10),  # CCOP max_try=10
    dict(type='PackRegionInputs'),
]

train_dataloader = dict(
    batch_size=4,  # toy
    num_workers=0,  # toy: 2 shared CPU cores, load in the main process
    persistent_workers=False,  # must be False with num_workers=0
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
