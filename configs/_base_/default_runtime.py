# Runtime shared by every mmregion pre-training config (mmpretrain's
# configs/_base_/default_runtime.py, adapted).
# default_scope='mmregion': mmengine imports `mmregion.registry`, whose
# registries import mmregion's sub-packages lazily (`locations=`), so no
# `custom_imports` is needed; other libraries are named with their scope
# (`type='mmpretrain.ResNet'`, `type='mmdet.FPN'`).
default_scope = 'mmregion'

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # torch's RNG state in every checkpoint, restored on resume: a resumed
    # run draws the same jitters/points as an uninterrupted one
    rng_state=dict(type='RNGStateHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='mmengine.Visualizer', vis_backends=vis_backends, name='visualizer')

# window_size: smoothing of the logged losses (iterations); by_epoch=False
# prints `Iter(train) [i/max_iters]`, right for the IterBasedTrainLoop toy
# configs (epoch-based configs may set by_epoch=True in the leaf config)
log_processor = dict(window_size=10, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# diff_rank_seed: rank r seeds its generators with seed + r, so the ranks
# draw different augmentations/jitters/points (mmengine's default gives all
# ranks the same stream); the sampler still shares one seed across ranks
# (mmengine), and RNGStateHook saves and restores every rank's state
randomness = dict(seed=None, deterministic=False, diff_rank_seed=True)
