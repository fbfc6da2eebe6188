# Deformable DETR R50 on mini-VOC 5 % (tools/make_mini_coco.py, see the 10 %
# config) -> VOC07 test, from a ProSeCo / DETReg detector (load_from).
# DETReg has no 5 % Pascal script: [ASSUMED] the recipe of its 10 % one
# (batch 8, 200 epochs, lr drop at 150, inherited).
# Headline (ProSeCo paper, mini-VOC 5 %): supervised 33.9, DETReg 43.1,
# ProSeCo 46.1 AP.
_base_ = './deformable-detr_r50_mini-voc-10pct.py'

train_dataloader = dict(
    dataset=dict(ann_file='annotations/mini/voc0712_trainval_5pct_seed0.json'))
