# CCOP pre-training schedule (github ChenhongyiYang/CCOP
# configs/selfsup/ccop/r50_d2.py): SGD lr 0.3, momentum 0.9, wd 1e-4 for a
# total batch of 256 (8 GPUs x 32), cosine to 0 over the 800 epochs, the
# first 10 scaled by a linear warm-up from ratio 1e-4.
optim_wrapper = dict(
    # stops with a message naming the loss and iteration when a loss turns
    # NaN/inf (on_nonfinite='skip' skips the step instead)
    type='FiniteCheckOptimWrapper',
    on_nonfinite='raise',
    optimizer=dict(type='SGD', lr=0.3, momentum=0.9,
                   weight_decay=1e-4))  # CCOP r50_d2.py

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,  # CCOP warmup_ratio=0.0001
        by_epoch=True,
        begin=0,
        end=10,  # CCOP warmup_iters=10, warmup_by_epoch=True
        convert_to_iter_based=True),
    # CCOP lr_config (mmcv CosineAnnealing + warmup): the cosine runs over
    # all 800 epochs and the warm-up multiplies it (mmengine chains
    # overlapping schedulers multiplicatively); per iteration here, per
    # epoch in mmcv (by_epoch=True)
    dict(
        type='CosineAnnealingLR',
        T_max=800,
        eta_min=0.,  # CCOP min_lr=0.
        by_epoch=True,
        begin=0,
        end=800,
        convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)  # CCOP
# lr 0.3 is for a total batch of 256 (`--auto-scale-lr` rescales it)
auto_scale_lr = dict(base_batch_size=256)
