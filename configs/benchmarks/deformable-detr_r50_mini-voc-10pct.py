# Deformable DETR R50 on mini-VOC 10 % (a seeded 10 % of VOC07+12 trainval,
# tools/make_mini_coco.py on the COCO-format VOC file) -> VOC07 test, from a
# ProSeCo / DETReg detector (load_from). DETReg
# configs/DETReg_fine_tune_10pct_pascal.sh + README: `--filter_pct 0.1`,
# 2 GPUs x `--batch_size 4` = 8, `--epochs 200 --lr_drop 150`,
# `--eval_every 20`. [ASSUMED] ProSeCo used these settings.
# Headline (ProSeCo paper, mini-VOC 10 %): supervised 40.8, DETReg 48.2,
# ProSeCo 51.3 AP.
# Make the split first (nested with the 5 % one; `--split-mode detreg
# --detreg-order file` draws DETReg's default_rng(42) subset instead, equal to
# DETReg's when the file lists the images in its VOC list order):
#   python tools/make_mini_coco.py \
#       data/VOCdevkit/annotations/voc0712_trainval.json \
#       data/VOCdevkit/annotations/mini --percent 5 10 --seed 0
_base_ = './deformable-detr_r50_voc0712.py'

train_dataloader = dict(
    batch_size=4,  # DETReg README: 2 GPUs x 4 = 8 (run on 2 GPUs)
    dataset=dict(
        ann_file='annotations/mini/voc0712_trainval_10pct_seed0.json'))
auto_scale_lr = dict(enable=False, base_batch_size=8)

max_epochs = 200  # DETReg README: --epochs 200 --lr_drop 150
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=20)
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[150],
        gamma=0.1)
]
default_hooks = dict(
    checkpoint=dict(
        type='mmregion.SafeCheckpointHook', interval=20, max_keep_ckpts=3))
