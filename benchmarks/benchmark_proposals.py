"""Speed and recall of proposal generation on the toy set.

Prints images/s of ``generate_proposals`` with 1 and 2 workers (default
settings: selective search 'fast', max side 500, CCOP's filters, top 50),
the speed-up ratio (target >= 1.8x with 2 workers on 2 free cores) and the
recall of the toy set's ground-truth boxes at IoU 0.5 (target >= 0.9).

Example::

    python benchmarks/benchmark_proposals.py            # makes a toy set
    python benchmarks/benchmark_proposals.py data/toy_coco --num-images 100
"""
import argparse
import json
import os
import os.path as osp
import resource
import sys
import tempfile

import numpy as np

try:
    from mmregion.proposals import (box_iou, generate_proposals,
                                    load_proposal_store)
    from mmregion.testing.toy_data import make_toy_coco
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmregion.proposals import (box_iou, generate_proposals,
                                    load_proposal_store)
    from mmregion.testing.toy_data import make_toy_coco


def recall(store, ann_file: str, iou_thr: float = 0.5) -> float:
    """Fraction of ground-truth boxes matched by a proposal at ``iou_thr``.
    """
    with open(ann_file) as f:
        coco = json.load(f)
    key_of = {im['id']: im['file_name'] for im in coco['images']}
    gts = {}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        gts.setdefault(key_of[a['image_id']], []).append([x, y, x + w, y + h])
    hit = total = 0
    for key, gt in gts.items():
        boxes = store.get(key)
        if boxes is None:
            continue
        gt = np.asarray(gt, np.float32)
        total += len(gt)
        if len(boxes):
            hit += int((box_iou(gt, boxes).max(1) >= iou_thr).sum())
    return hit / max(total, 1)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children."""
    total = 0.
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        'toy_root', nargs='?', help='toy COCO root (made if '
        'omitted)')
    p.add_argument('--num-images', type=int, default=200)
    p.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    p.add_argument('--mode', default='fast')
    p.add_argument('--topk', type=int, default=50)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.toy_root
        if root is None:
            root = osp.join(tmp, 'toy')
            make_toy_coco(root, num_train=args.num_images, num_val=0)
        ann_file = osp.join(root, 'annotations', 'instances_train.json')
        with open(ann_file) as f:
            coco = json.load(f)
        coco['images'] = sorted(
            coco['images'], key=lambda im: im['file_name'])[:args.num_images]
        keep = {im['id'] for im in coco['images']}
        coco['annotations'] = [
            a for a in coco['annotations'] if a['image_id'] in keep
        ]
        sub_ann = osp.join(tmp, 'instances_train.json')
        with open(sub_ann, 'w') as f:
            json.dump(coco, f)

        speeds = {}
        store = None
        print(f'load average before: {os.getloadavg()[0]:.1f} on '
              f'{os.cpu_count()} cores (a busy machine lowers the speed-up)')
        for w in args.workers:
            out = osp.join(tmp, f'proposals_w{w}')
            cpu0 = _cpu_seconds()
            stats = generate_proposals(
                sub_ann,
                out,
                img_root=osp.join(root, 'train'),
                mode=args.mode,
                topk=args.topk,
                workers=w,
                progress=False)
            cpu = _cpu_seconds() - cpu0
            speeds[w] = stats['images_per_s']
            print(f'workers={w}: {stats["done"]} images in '
                  f'{stats["seconds"]:.1f}s = {speeds[w]:.1f} images/s, '
                  f'{stats["mean_boxes"]:.1f} boxes/image, '
                  f'{1000 * cpu / max(stats["done"], 1):.0f} CPU-ms/image, '
                  f'CPU use {cpu / stats["seconds"]:.2f} cores')
            store = load_proposal_store(out)
        base = args.workers[0]
        for w in args.workers[1:]:
            print(f'speed-up {w} vs {base} workers: '
                  f'{speeds[w] / speeds[base]:.2f}x')
        print(f'recall@IoU0.5 (mode={args.mode}, top-{args.topk}): '
              f'{recall(store, sub_ann):.3f}')


if __name__ == '__main__':
    main()
