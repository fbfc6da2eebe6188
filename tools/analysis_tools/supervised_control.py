"""Supervised positive control of the region probe.

Trains a backbone *with labels* on the ground-truth boxes of a COCO json
(RoIAlign of C3-C5 at every box, averaged, one linear classifier, cross
entropy) and saves it as ``{'state_dict': {'backbone.*': ...}}``, which
``tools/analysis_tools/region_probe.py`` and the transfer benchmark's probe
read like any pre-trained backbone. A control that is clearly above random
init on the probe shows that the probe can see learned features at these
sizes and that the backbone can learn the classes within the budget; a
pre-training method that stays at random init under the same budget then
says something about the method, not about the instrument
(``docs/benchmark_transfer.md``, "Why the gate failed").

Example (the control of the first v2 run: 1500 iterations, ~15 min on one
thread)::

    python tools/analysis_tools/supervised_control.py \\
        WORK/data/annotations/instances_train.json WORK/data/train \\
        work_dirs/supervised_control.pth --base-channels 32
"""
import argparse
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('ann', help='COCO json whose box labels are trained on')
    p.add_argument('img_dir', help='image folder of ann')
    p.add_argument('out', help='where the backbone checkpoint is written')
    p.add_argument('--depth', type=int, default=18)
    p.add_argument('--base-channels', type=int, default=64)
    p.add_argument('--iters', type=int, default=1500)
    p.add_argument('--batch', type=int, default=16, help='images per step')
    p.add_argument('--lr', type=float, default=0.02)
    p.add_argument(
        '--scale',
        type=float,
        default=1.0,
        help='images (and boxes) are resized by this factor')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--log-every', type=int, default=100)
    return p.parse_args(argv)


def train_control(items,
                  num_classes: int,
                  depth: int,
                  base_channels: int,
                  iters: int,
                  batch: int,
                  lr: float,
                  scale: float,
                  seed: int,
                  log_every: int = 100):
    """Train the control; return the backbone and the logged means.

    Args:
        items: ``[(image path, (n, 4) x1y1x2y2 boxes, (n, ) labels)]``
            (``mmregion.apis.object_probe.load_gt_boxes``).
        num_classes (int): Number of labels.

    Returns:
        tuple: the backbone (eval mode) and ``[(iteration, mean loss, mean
        batch accuracy)]`` over each ``log_every`` iterations.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torchvision.ops import roi_align

    from mmregion.apis.transfer.pretrain import stage_channels
    from mmregion.apis.transfer.probe import (STRIDES, build_backbone,
                                              load_image)
    model = build_backbone(depth, base_channels, None, seed)
    # C3 + C4 + C5 channels
    head = torch.nn.Linear(
        sum(stage_channels(depth, base_channels)[1:]), num_classes)
    model.train()
    opt = torch.optim.SGD(
        list(model.parameters()) + list(head.parameters()),
        lr=lr,
        momentum=0.9,
        weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    hist, log = [], []
    for it in range(iters):
        picked = [
            items[i]
            for i in rng.choice(len(items), min(batch, len(items)), False)
        ]
        x = torch.stack([load_image(p, scale) for p, _, _ in picked])
        rois = torch.cat([
            torch.cat([
                torch.full((len(b), 1), float(i)),
                torch.as_tensor(np.asarray(b, np.float32) * scale)
            ], 1) for i, (_, b, _) in enumerate(picked)
        ])
        labels = torch.cat([torch.as_tensor(c) for _, _, c in picked]).long()
        feats = torch.cat([
            roi_align(c, rois, 3, 1.0 / s, sampling_ratio=2,
                      aligned=True).mean((2, 3))
            for c, s in zip(model(x), STRIDES)
        ], 1)
        logits = head(feats)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(
            (float(loss), float((logits.argmax(1) == labels).float().mean())))
        if (it + 1) % log_every == 0 or it + 1 == iters:
            mean = np.mean(hist, 0)
            log.append((it + 1, float(mean[0]), float(mean[1])))
            hist = []
    model.eval()
    return model, log


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.ann):
        print(
            f'supervised_control: error: no annotation file {args.ann}',
            file=sys.stderr)
        return 2
    if args.iters < 1 or args.batch < 1 or args.scale <= 0:
        print(
            'supervised_control: error: --iters and --batch must be >= 1 '
            'and --scale > 0',
            file=sys.stderr)
        return 2
    import json

    from mmregion.apis.object_probe import load_gt_boxes
    from mmregion.utils.atomic_io import atomic_save
    items = load_gt_boxes(args.ann, args.img_dir)
    if not items:
        print(
            f'supervised_control: error: {args.ann} has no usable boxes',
            file=sys.stderr)
        return 2
    with open(args.ann) as f:
        num_classes = len(json.load(f)['categories'])
    t0 = time.time()
    model, log = train_control(items, num_classes, args.depth,
                               args.base_channels, args.iters, args.batch,
                               args.lr, args.scale, args.seed, args.log_every)
    for it, loss, acc in log:
        print(f'iter {it}: loss {loss:.3f}, batch accuracy {100 * acc:.1f} %')
    atomic_save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in model.state_dict().items()
        }), args.out)
    print(f'Wrote {args.out} ({time.time() - t0:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
