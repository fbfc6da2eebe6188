"""Detection transfer: can the detector see the objects, and how well does
each backbone train it.

:func:`anchor_coverage` measures the share of ground-truth boxes that have
an anchor with IoU >= a threshold (a box without one never becomes an RPN
positive through the IoU rule); the protocol refuses to train when it is
below ``detection.min_anchor_coverage``. :func:`detection_config` turns the
protocol's detection config into one run (mode, init, seed, budget, data);
:func:`run_detection` trains it with AP measured on the dev split every
``eval_every`` iterations, then tests the last checkpoint on the test split.
"""
import json
import math
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np
import torch

from .runner import REPO, load_config, run_command

MODES = dict(frozen=4, finetune=-1)  # ResNet frozen_stages
METRICS = ('bbox_mAP', 'bbox_mAP_50')


def anchor_coverage(boxes: np.ndarray,
                    image_size: int,
                    anchor_generator: dict,
                    iou_thr: float = 0.3) -> float:
    """Share of boxes whose best anchor has IoU >= ``iou_thr``.

    Args:
        boxes: ``(N, 4)`` x1y1x2y2 boxes on an image of ``image_size``
            square pixels (the detector's input scale).
        image_size (int): Side of the (square) input image.
        anchor_generator (dict): An mmdet anchor generator config.
        iou_thr (float): IoU threshold. Defaults to 0.3 (the RPN's
            negative / low-quality match threshold).

    Returns:
        float: The share in [0, 1].
    """
    from mmdet.registry import TASK_UTILS
    from mmdet.structures.bbox import bbox_overlaps
    gen = TASK_UTILS.build(dict(anchor_generator))
    sizes = [(math.ceil(image_size / s[1]), math.ceil(image_size / s[0]))
             for s in gen.strides]
    anchors = torch.cat(gen.grid_priors(sizes, device='cpu'))
    boxes_t = torch.as_tensor(np.asarray(boxes, np.float32)).view(-1, 4)
    if len(boxes_t) == 0:
        raise ValueError('anchor_coverage: no boxes')
    best = bbox_overlaps(boxes_t, anchors).max(1).values
    return float((best >= iou_thr).float().mean())


def coco_boxes(ann_file: str, scale: float = 1.0) -> np.ndarray:
    """``(N, 4)`` x1y1x2y2 boxes of a COCO json, times ``scale``."""
    with open(ann_file) as f:
        anns = json.load(f)['annotations']
    out = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)
           if w >= 1 and h >= 1]
    return np.array(out, np.float32).reshape(-1, 4) * scale


def detection_config(protocol: dict, root: str, classes: List[str], mode: str,
                     backbone: Optional[str], seed: int):
    """The mmengine Config of one detection run.

    Args:
        protocol (dict): The protocol.
        root (str): Data root.
        classes (list[str]): Category names.
        mode (str): ``frozen`` or ``finetune``.
        backbone (str, optional): Backbone checkpoint (every run gets one:
            random init is exported with recomputed BN statistics too).
        seed (int): Detection seed.
    """
    from .data import ANN, IMG
    det = protocol['detection']
    if mode not in MODES:
        raise ValueError(f'detection.modes: unknown {mode!r} (choose from '
                         f'{list(MODES)})')
    cfg = load_config(det['config'])
    bb = protocol['backbone']
    cfg.model.backbone.update(
        depth=bb['depth'],
        base_channels=bb['base_channels'],
        frozen_stages=MODES[mode],
        init_cfg=dict(type='Pretrained', checkpoint=backbone))
    from .pretrain import linear_warmup, stage_channels
    cfg.model.neck.in_channels = stage_channels(bb['depth'],
                                                bb['base_channels'])
    for head in ('bbox_head', 'mask_head'):
        if cfg.model.roi_head.get(head):
            cfg.model.roi_head[head].num_classes = len(classes)
    meta = dict(classes=tuple(classes))
    for loader, split in (('train_dataloader', 'labeled'),
                          ('val_dataloader', 'dev'), ('test_dataloader',
                                                      'test')):
        ds = cfg[loader].dataset
        ds.update(
            data_root=root,
            ann_file=ANN[split],
            data_prefix=dict(img=IMG[split]),
            metainfo=meta)
    cfg.val_evaluator.ann_file = osp.join(root, ANN['dev'])
    cfg.test_evaluator.ann_file = osp.join(root, ANN['test'])
    cfg.train_dataloader.batch_size = det['batch']
    iters = det['iters']
    warm = min(det['warmup_iters'], iters - 1) or 1
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop',
        max_iters=iters,
        val_interval=det['eval_every'])
    cfg.optim_wrapper.optimizer.lr = det['lr']
    cfg.param_scheduler = [
        linear_warmup(warm),
        dict(
            type='MultiStepLR',
            by_epoch=False,
            begin=0,
            end=iters,
            milestones=[max(1, int(det['step'] * iters))],
            gamma=0.1)
    ]
    cfg.default_hooks.checkpoint.interval = iters
    cfg.randomness = dict(seed=seed, deterministic=False)
    return cfg


def read_scalars(work_dir: str) -> List[dict]:
    """``[{'iter', 'bbox_mAP', 'bbox_mAP_50'}]`` (%) of every dev
    evaluation in ``work_dir/*/vis_data/scalars.json``."""
    points: Dict[int, dict] = {}
    for run in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, run, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        last = 0
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if 'iter' in rec and not any(
                        k.startswith('coco/') for k in rec):
                    last = int(rec['iter'])
                m = {
                    k[5:]: 100 * float(v)
                    for k, v in rec.items()
                    if k[5:] in METRICS and k.startswith('coco/')
                }
                if m:  # an iteration-based validation logs step 0
                    points[last] = dict(iter=last, **m)
    return [points[k] for k in sorted(points)]


def read_test(work_dir: str) -> Dict[str, object]:
    """AP / AP50 (%) of the newest ``tools/test.py`` run in ``work_dir``.

    A run whose detector output nothing on the whole test split (mmdet
    logs "the testing results of the whole dataset is empty" and writes no
    metric) reads as 0 AP with ``no_detections`` set.
    """
    runs = sorted(
        r for r in os.listdir(work_dir)
        if osp.isfile(osp.join(work_dir, r, f'{r}.json')))
    if not runs:
        raise RuntimeError(f'{work_dir}: tools/test.py wrote no metrics')
    with open(osp.join(work_dir, runs[-1], f'{runs[-1]}.json')) as f:
        rec = json.load(f)
    if not any(k.startswith('coco/') for k in rec):
        return dict({m: 0.0 for m in METRICS}, no_detections=True)
    return {m: 100 * float(rec[f'coco/{m}']) for m in METRICS}


def run_detection(protocol: dict, root: str, classes: List[str], mode: str,
                  backbone: str, seed: int, work: str) -> dict:
    """Train one detector (dev curve) and test it (test split).

    Returns:
        dict: ``curve`` (dev), ``test`` (``bbox_mAP``, ``bbox_mAP_50``),
        ``mode``, ``seed``.
    """
    os.makedirs(work, exist_ok=True)
    cfg = detection_config(protocol, root, classes, mode, backbone, seed)
    derived = osp.join(work, f'det_{mode}_seed{seed}.py')
    cfg.dump(derived)
    from .pretrain import train_cmd
    cmd = train_cmd(derived, work)
    if osp.isfile(osp.join(work, 'last_checkpoint')):
        cmd.append('--resume')
    run_command(cmd, osp.join(work, 'train.log'))
    ckpt = osp.join(work, f'iter_{protocol["detection"]["iters"]}.pth')
    test_work = osp.join(work, 'test')
    run_command([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), derived, ckpt, '--work-dir',
        test_work
    ], osp.join(work, 'test.log'))
    curve = read_scalars(work)
    return dict(curve=curve, test=read_test(test_work), mode=mode, seed=seed)
