# Deformable DETR R50 on mini-COCO 10 % (a seeded 10 % of train2017 images,
# tools/make_mini_coco.py) -> val2017, initialised from a ProSeCo / DETReg
# detector (load_from). ProSeCo's mini-COCO protocol follows DETReg's
# semi-supervised fine-tuning [ASSUMED, see deformable-detr_r50_50e_coco.py]:
# github amirbar/DETReg configs/DETReg_fine_tune_10pct_coco.sh
# (`--filter_pct 0.1 --epochs 400 --lr_drop 400`, i.e. 400 epochs at a
# constant lr; the `--lr_drop` = epochs of all low-data scripts came with
# DETReg PR #40 after issue #39: premature lr drops hurt these runs).
# DETReg's low-data schedules: 1 / 2 / 5 / 10 % = 2000 / 1000 / 500 / 400
# epochs, no drop.
# Make the split first (nested, category-covering; the default):
#   python tools/make_mini_coco.py \
#       data/coco/annotations/instances_train2017.json \
#       data/coco/annotations/mini --percent 1 5 10 --seed 0
# or DETReg's own independent draws (default_rng(42)) for comparability with
# its numbers, then point ann_file to *_10pct_detreg_seed42.json:
#   python tools/make_mini_coco.py ... --percent 1 5 10 --split-mode detreg
# Headline (ProSeCo paper, Bouniot et al., ICLR 2023): supervised 28.6,
# DETReg 30.9, ProSeCo 32.8 mAP.
_base_ = './deformable-detr_r50_50e_coco.py'

# tools/make_mini_coco.py output (seed 0); data_root stays data/coco/
train_dataloader = dict(
    # DETReg README: 8 GPUs x --batch_size 3 = 24 for the 1/2/5/10 % runs
    # (run on 8 GPUs; the lr stays 2e-4 as in DETReg, no lr scaling)
    batch_size=3,
    dataset=dict(
        ann_file='annotations/mini/instances_train2017_10pct_seed0.json'))
auto_scale_lr = dict(enable=False, base_batch_size=24)

# DETReg 10pct script: --epochs 400 --lr_drop 400 (constant lr)
max_epochs = 400
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=20)
param_scheduler = [
    dict(
        type='ConstantLR', factor=1.0, begin=0, end=max_epochs, by_epoch=True)
]
# evaluate / checkpoint every 20 epochs instead of every epoch (cost only)
default_hooks = dict(
    checkpoint=dict(
        type='mmregion.SafeCheckpointHook', interval=20, max_keep_ckpts=3))
