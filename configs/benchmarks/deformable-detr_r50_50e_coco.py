# Deformable DETR R50 (single scale queries, no box refinement, one stage),
# COCO train2017 -> val2017, initialised from a ProSeCo / DETReg pre-trained
# detector (load_from). The protocol of ProSeCo (Bouniot et al., ICLR 2023),
# which fine-tunes as DETReg does (github amirbar/DETReg,
# configs/DETReg_fine_tune_full_coco.sh + util/default_args.py): 300 queries,
# AdamW lr 2e-4, backbone lr 2e-5, wd 1e-4, grad clip 0.1, batch 32, 50 epochs
# with the lr drop at 40. mmdet's config below has exactly these values.
# [ASSUMED] that ProSeCo used DETReg's fine-tuning settings unchanged: its code
# is not public and its appendix could not be read (docs/fidelity.md).
#
#   python tools/train.py configs/benchmarks/deformable-detr_r50_50e_coco.py \
#       --cfg-options load_from=work_dirs/proseco/detector_mmdet.pth
# The checkpoint must use mmdet's DeformableDETR key names (the ProSeCo
# algorithm's converter writes them); the 1-class (object / no-object)
# pre-training classifier does not match the 80-class head and is skipped
# with a logged size-mismatch warning, as DETReg drops `class_embed`.
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

custom_imports = dict(imports=['mmregion'], allow_failed_imports=False)

# how tools/benchmark_finetune.py initialises from a pre-training checkpoint
pretrain_init = 'load_from'
load_from = None  # the ProSeCo / DETReg detector checkpoint

# Inherited from mmdet (and equal to DETReg / Deformable DETR defaults):
#   num_queries=300, 6+6 layers, FFN 1024, 4 feature levels (DETReg
#   default_args: num_queries 300, dim_feedforward 1024, num_feature_levels 4);
#   backbone frozen BN and frozen stem + layer1 (frozen_stages=1, Deformable
#   DETR's backbone trains layer2-4 only), torchvision://resnet50 init that
#   load_from overwrites;
#   AdamW lr 2e-4, wd 1e-4, clip_grad max_norm 0.1 (DETReg default_args);
#   lr_mult 0.1 for backbone (lr_backbone 2e-5), sampling_offsets and
#   reference_points (lr_linear_proj_mult 0.1);
#   16 GPUs x 2 images = 32 (DETReg: 8 GPUs x batch_size 4 = 32);
#   50 epochs, lr x0.1 at epoch 40 (DETReg: epochs 50, lr_drop 40);
#   DETR multi-scale + random-crop augmentation (DETReg datasets/coco.py
#   make_coco_transforms).
auto_scale_lr = dict(enable=False, base_batch_size=32)

# mmregion's CheckpointHook: atomic writes, the previous checkpoint survives
# a kill during the save (docs/reliability.md sec. 2); mmdet's settings kept
default_hooks = dict(checkpoint=dict(type='mmregion.SafeCheckpointHook'))
