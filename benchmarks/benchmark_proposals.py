"""Speed and recall of proposal generation against raw OpenCV.

One pass over ``--num-images`` images of a toy COCO set (made if no root is
given) by three runners, interleaved in ABBA rounds
(``bench_utils.interleaved``):

- ``opencv``: the floor, in this process: ``cv2.imread``, the same
  downscaling, ``createSelectiveSearchSegmentation`` +
  ``switchToSelectiveSearchFast`` (``--mode``) + ``process()``, nothing else;
- ``ours_w1`` / ``ours_w2``: ``generate_proposals`` with 1 and 2 workers
  (selective search, max side 500, CCOP's filters, top ``--topk``, shards
  written atomically into a fresh folder).

Prints images/s, the per-round ratios ``ours_w1 / opencv`` (our overhead
over raw OpenCV, 1.0 = none), the 2-vs-1-worker speed-up (target >= 1.8x on
2 free cores) and the recall of the toy ground-truth boxes at IoU 0.5
(target >= 0.9). Peak memory: the largest RSS of a worker process.

Example::

    python benchmarks/benchmark_proposals.py --num-images 40 --rounds 2
    python benchmarks/benchmark_proposals.py data/toy_coco --num-images 100
"""
import argparse
import itertools
import json
import os
import os.path as osp
import resource
import shutil
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bench_utils as bu  # noqa: E402

import mmregion.proposals as props  # noqa: E402
from mmregion.testing.toy_data import make_toy_coco  # noqa: E402


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
            hit += int((props.box_iou(gt, boxes).max(1) >= iou_thr).sum())
    return hit / max(total, 1)


def raw_opencv(paths, mode: str = 'fast', max_side: int = 500) -> int:
    """Selective search of OpenCV alone on ``paths``; the number of boxes.
    """
    import cv2
    n = 0
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        if max(h, w) > max_side:
            s = max_side / max(h, w)
            img = cv2.resize(
                img, (max(1, round(w * s)), max(1, round(h * s))),
                interpolation=cv2.INTER_AREA)
        ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        ss.setBaseImage(img)
        if mode == 'fast':
            ss.switchToSelectiveSearchFast()
        elif mode == 'quality':
            ss.switchToSelectiveSearchQuality()
        else:
            ss.switchToSingleStrategy(200, 0.8)
        n += len(ss.process())
    return n


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        'toy_root', nargs='?', help='toy COCO root (made if omitted)')
    p.add_argument('--num-images', type=int, default=40)
    p.add_argument('--mode', default='fast')
    p.add_argument('--topk', type=int, default=50)
    bu.add_common_args(p, rounds=2, warmup=0)
    return p.parse_args(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    import cv2
    cv2.setNumThreads(1)
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
        img_root = osp.join(root, 'train')
        paths = [osp.join(img_root, im['file_name']) for im in coco['images']]
        n_img = len(paths)
        counter = itertools.count()
        last = {}

        def ours(workers):

            def run():
                out = osp.join(tmp, f'proposals_{next(counter)}')
                last['stats'] = props.generate_proposals(
                    sub_ann,
                    out,
                    img_root=img_root,
                    mode=args.mode,
                    topk=args.topk,
                    workers=workers,
                    progress=False)
                if 'store' in last:
                    shutil.rmtree(last['store'])
                last['store'] = out

            return run

        load = os.getloadavg()[0]
        setting = (f'{n_img} toy images of '
                   f'{coco["images"][0].get("width", "?")} px, selective '
                   f'search {args.mode}, max side 500, CCOP filters, top '
                   f'{args.topk}; load average {load:.1f} on '
                   f'{os.cpu_count()} cores before')
        print(f'setting: {setting}', flush=True)
        res = bu.interleaved(
            dict(
                opencv=lambda: raw_opencv(paths, args.mode),
                ours_w1=ours(1),
                ours_w2=ours(2)), 'opencv', args.rounds, args.warmup)
        bu.print_timing(res)
        t = res['times_ms']
        # per round: 2 runs of each (ABBA), speed-up = time w1 / time w2
        speedups = [(t['ours_w1'][2 * i] + t['ours_w1'][2 * i + 1]) /
                    (t['ours_w2'][2 * i] + t['ours_w2'][2 * i + 1])
                    for i in range(args.rounds)]
        ips = {k: n_img / (v / 1e3) for k, v in res['median_ms'].items()}
        rec = recall(props.load_proposal_store(last['store']), sub_ann)
        print('images/s: ' + ', '.join(f'{k} {v:.1f}' for k, v in ips.items()))
        print(f'speed-up 2 vs 1 workers: median '
              f'{statistics.median(speedups):.2f}x (rounds: ' +
              ', '.join(f'{s:.2f}' for s in speedups) + '; target >= 1.8x)')
        print(f'recall@IoU0.5 (mode={args.mode}, top-{args.topk}): '
              f'{rec:.3f} (target >= 0.9)')
        worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        res['ratios']['speedup_w2_vs_w1'] = dict(
            median=statistics.median(speedups),
            rounds=speedups,
            min=min(speedups),
            max=max(speedups))
        res.update(
            name='proposals',
            title='Proposals: ours / raw OpenCV, 2 vs 1 workers',
            setting=setting,
            sizes=dict(
                num_images=n_img, mode=args.mode, max_side=500,
                topk=args.topk),
            baseline='opencv',
            target='2 vs 1 workers >= 1.8x; recall >= 0.9',
            extra=dict(
                images_per_s=ips,
                recall_iou05=rec,
                mean_boxes=last['stats']['mean_boxes']),
            memory=dict(
                ours_w2=dict(
                    peak_mib=worker_rss / 1024.,
                    step_mib=None,
                    kind='largest RSS of a child process (ru_maxrss)')))
        if args.no_memory:
            res.pop('memory')
    return bu.finish(res, args)


if __name__ == '__main__':
    main()
