# The toy counterpart of coco_regions_2view.py for smoke tests and CPU runs:
# the toy set of docs/design.md sec. 5 (`python tools/make_toy_coco.py
# data/toy_coco`) with proposals from `tools/generate_proposals.py` in
# data/toy_coco/proposals/train. Same recipe, 96-px views, tiny batches.
_base_ = ['./coco_regions_2view.py']

data_root = 'data/toy_coco/'
proposal_file = data_root + 'proposals/train'

# the parent's view recipe at 96 px
view_pipeline = [
    dict(
        _base_.view_pipeline[0],
        scale=96,  # toy: 96-px views (CCOP: 224)
        min_area=26),  # CCOP 144 px^2 at 224 px, scaled by (96/224)^2
    *_base_.view_pipeline[1:],
]

train_pipeline = [
    _base_.train_pipeline[0],
    dict(_base_.train_pipeline[1], proposal_file=proposal_file),
    dict(_base_.train_pipeline[2], transforms=[view_pipeline],
         retry='common'),  # toy: MultiViewRegions' default (COCO: 'per_view')
    *_base_.train_pipeline[3:],
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
