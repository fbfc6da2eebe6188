# Tiny iteration-based schedule for the toy CPU runs (smoke/e2e tests):
# CCOP's recipe (SGD, momentum 0.9, wd 1e-4, warm-up then cosine; see
# sgd_coslr_800e.py) shrunk to a few dozen iterations with a small lr.
max_iters = 40
optim_wrapper = dict(
    # stops with a message naming the loss and iteration when a loss turns
    # NaN/inf (on_nonfinite='skip' skips the step instead)
    type='FiniteCheckOptimWrapper',
    on_nonfinite='raise',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - 5,
        eta_min=0.,
        by_epoch=False,
        begin=5,
        end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
