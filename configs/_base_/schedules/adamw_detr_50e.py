# DETR-family pre-training schedule: AdamW, 50 epochs, lr drop at epoch 40.
# Source: DETReg (github amirbar/DETReg, README / main.py defaults): lr 2e-4,
# weight decay 1e-4, gradient clipping 0.1, COCO pre-training 50 epochs with
# the lr dropped (x0.1) at epoch 40 (DETR's lr_drop convention).
optim_wrapper = dict(
    # stops with a message naming the loss and iteration when a loss turns
    # NaN/inf (on_nonfinite='skip' skips the step instead)
    type='FiniteCheckOptimWrapper',
    on_nonfinite='raise',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),  # DETReg
    clip_grad=dict(max_norm=0.1, norm_type=2),  # DETReg --clip_max_norm 0.1
    paramwise_cfg=dict(
        custom_keys={
            # mmdet Deformable DETR config: lr x0.1 for the deformable
            # attention offsets and the reference points
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1),
        }))

max_epochs = 50  # DETReg, COCO pre-training
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[40],  # DETReg --lr_drop 40
        gamma=0.1)
]
# base batch of the lr above: DETReg 24 images/GPU x 8 GPUs
auto_scale_lr = dict(base_batch_size=192)
