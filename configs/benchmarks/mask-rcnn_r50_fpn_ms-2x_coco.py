# Mask R-CNN R50-FPN, 2x, COCO: the longer schedule of the same MoCo / InfoMin
# transfer protocol (PLRC and MoCo report 1x and 2x; mmselfsup:
# configs/benchmarks/mmdetection/coco/mask-rcnn_r50_fpn_ms-2x_coco.py).
# Everything but the schedule comes from mask-rcnn_r50_fpn_ms-1x_coco.py.
# (mmdet's own 2x is mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py = 1x with
# mmdet::_base_/schedules/schedule_2x.py; the schedule below is that file's.)
_base_ = './mask-rcnn_r50_fpn_ms-1x_coco.py'

# 2x: 24 epochs, lr steps at 16 and 22 (mmdet schedule_2x; detectron2 2x:
# 180k iters, steps 120k/160k at batch 16)
max_epochs = 24
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1)
]
