# Deformable DETR R50 on PASCAL VOC: trainval 2007+2012 -> test 2007, from a
# ProSeCo / DETReg detector (load_from). DETReg
# configs/DETReg_fine_tune_full_pascal.sh + main.py get_datasets('voc'):
# VOC2007+2012 trainval, VOC2007 test, the COCO-style transforms, lr 2e-4;
# DETReg's README runs it with `--batch_size 4 --epochs 100 --lr_drop 70` on
# 8 GPUs (batch 32, 100 epochs, lr drop at 70; `--eval_every 10` in the
# script); AP is COCO-style (AP, AP50, AP75). Headline (ProSeCo paper):
# DETReg 63.5, ProSeCo 65.1 AP. [ASSUMED] ProSeCo used DETReg's VOC settings
# unchanged.
#
# Annotations in COCO format, written by mmdet's converter:
#   MMDET=$(python -c "import mmdet,os;print(os.path.dirname(mmdet.__file__))")
#   python $MMDET/.mim/tools/dataset_converters/pascal_voc.py \
#       data/VOCdevkit -o data/VOCdevkit/annotations --out-format coco
# (gives annotations/voc0712_trainval.json and voc07_test.json, as in
# mmdet::pascal_voc/faster-rcnn_r50-fpn_1x_voc0712-cocofmt.py).
_base_ = './deformable-detr_r50_50e_coco.py'

data_root = 'data/VOCdevkit/'
# class names and order of mmdet's VOCDataset / the converter
metainfo = dict(
    classes=('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
             'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
             'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'))

model = dict(bbox_head=dict(num_classes=20))

train_dataloader = dict(
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/voc0712_trainval.json',
        data_prefix=dict(img=''),
        metainfo=metainfo))
val_dataloader = dict(
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/voc07_test.json',
        data_prefix=dict(img=''),
        metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/voc07_test.json',
    metric='bbox')
test_evaluator = val_evaluator

# DETReg README (full Pascal): --epochs 100 --lr_drop 70; --eval_every 10
max_epochs = 100
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[70],
        gamma=0.1)
]
