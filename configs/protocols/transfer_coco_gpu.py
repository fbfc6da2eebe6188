# Transfer benchmark v2, the COCO protocol for GPUs: the stages, rules,
# probe and claims of transfer_toy_cpu.py at the papers' scale; only what
# differs is written here (docs/benchmark_transfer.md).
#   python tools/benchmark_transfer.py configs/protocols/transfer_coco_gpu.py \
#       --gpus 8
# Not run by this repository's CI (it needs COCO and 8 GPUs for days); its
# plan is checked by tests/test_transfer/test_protocol.py.
_base_ = ['./transfer_toy_cpu.py']

# an existing COCO-layout root (mmregion/apis/transfer/data.py): train/ =
# train2017 (unlabelled pre-training images, instances_train.json), a 10 %
# labelled subset of it (instances_train_labeled.json, DETReg / ProSeCo's
# few-label setting), val/ = val2017 split by image into dev (1000 images)
# and test (the other 4000)
data = dict(_delete_=True, type='coco', root='data/coco_transfer/')

backbone = dict(depth=50, base_channels=64)  # ResNet-50 for every method
batch = 256  # 8 GPUs x 32 (MoCo v2: 256)
views = dict(
    size=224,  # MoCo v2 / CCOP / PLRC view size
    crop_scale=(0.2, 1.0),  # MoCo v2 and PLRC: (0.2, 1); CCOP: (0.1, 1)
    # MoCo v2 / CCOP: sigma (0.1, 2) at p 0.5 on 224-px views, the same for
    # every method; COCO's classes are not defined by 4-px patterns
    blur=dict(_delete_=True, sigma=(0.1, 2.0), prob=0.5))
queues = dict(image=256 * batch, region=256 * batch)  # 65536 (MoCo, CCOP)

pretrain = dict(
    iters=370000,  # 800 epochs of COCO train2017 (118k) at batch 256
    batch=batch,
    lr=0.3,  # CCOP: 0.3 at batch 256
    warmup_iters=4600,  # 10 epochs
    momentum=0.001,  # EMA keeps 0.999 (MoCo v2, CCOP, PLRC)
    curve_every=46000,  # every 100 epochs
    proposal_min_size=20.0,  # CCOP: sqrt(wh) > 20 px
    # mocov2 keeps the toy file: the protocol sets its backbone, views,
    # queues and budget, which is all that differs at R-50
    methods=dict(
        ccop=dict(config='configs/mmregion/ccop_r50_coco.py'),
        plrc=dict(config='configs/mmregion/plrc_r50_coco.py')),
    variants=dict(_delete_=True))

probe = dict(
    scale=1.0,  # COCO images at their own size
    bn_images=2000,
    weight_decays=[1e-4, 1e-3, 1e-2, 1e-1])

detection = dict(
    config='configs/benchmarks/mask-rcnn_r50_fpn_ms-1x_coco.py',
    iters=90000,  # mmdet 1x at batch 16
    batch=16,
    lr=0.02,  # mmdet: 0.02 at batch 16
    warmup_iters=500,  # mmdet
    step=0.89,  # mmdet 1x: lr x 0.1 at epoch ~10.7 of 12
    eval_every=10000,
    scale=800)

claims = [
    dict(
        name='CCOP beats MoCo v2 on object-level tasks (multi-object scenes)',
        a='ccop',
        b='mocov2',
        metric='probe_linear'),
    dict(
        name='CCOP beats MoCo v2 on detection AP50 (full fine-tuning)',
        a='ccop',
        b='mocov2',
        metric='det_finetune_AP50'),
    dict(
        name='PLRC is more robust to region quality than CCOP',
        status='not run',
        why='box-source variants are not planned at COCO scale yet'),
    dict(
        name='ProSeCo beats DETReg with few labels',
        status='not run',
        why='the DETR stage is not part of protocol v2 yet'),
]
