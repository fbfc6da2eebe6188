# PLRC pre-training schedule: SGD lr 0.03, momentum 0.9, wd 1e-4 for a total
# batch of 256, cosine to 0 per epoch, no warm-up. Source: the official code
# facebookresearch/PLRC @5fbd1cb, `main_plrc.py` [main]. 800 epochs: the
# COCO convention of CCOP and DenseCL (why, and iteration parity with the
# 100 ImageNet epochs of the release: configs/mmregion/plrc_r50_coco.py).
max_epochs = 800
optim_wrapper = dict(
    # stops with a message naming the loss term and iteration when a loss
    # turns NaN/inf (on_nonfinite='skip' skips the step instead, counted)
    type='FiniteCheckOptimWrapper',
    on_nonfinite='raise',
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9,
                   weight_decay=1e-4))  # [main] lr 0.03, momentum 0.9, wd 1e-4
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs)  # [main] adjust_learning_rate: cosine, per epoch
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=256)  # [main] batch 256
