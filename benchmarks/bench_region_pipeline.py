"""Cost of the region-aware two-view pipeline against mmpretrain's MultiView.

Both pipelines run in this process (one torch thread, as in a dataloader
worker) on the same in-memory images (no disk
I/O) with the same RNG seed; the ratios are ours / mmpretrain's MoCo v2-style
image-only pipeline (``MultiView`` + ``PackInputs``):

- ``geometry``: crop + flip only (our crop also maps and filters the boxes);
- ``full``: with colour jitter, grayscale and blur (the CCOP recipe);
- ``stack_regions``: our padding of a batch of region boxes against
  ``torch.nn.utils.rnn.pad_sequence``.

Each comparison runs in ``bench_utils.interleaved`` ABBA rounds (one round:
a pass over all images by each pipeline, twice); the ratio is the median of
the per-round ratios. Peak memory is not measured (in-memory transforms).

Usage: ``python benchmarks/bench_region_pipeline.py [--num-images 32]
[--rounds 3] [--num-boxes 50] [--json PATH]``
"""
import argparse
import copy
import os.path as osp
import sys

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bench_utils as bu  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from mmregion.models.utils import stack_regions  # noqa: E402
from mmregion.registry import TRANSFORMS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


class _DictStore:

    def __init__(self, boxes):
        self.boxes = boxes

    def get(self, key):
        return self.boxes.get(key)


def _photometric():
    """The CCOP recipe's colour jitter, grayscale and blur (the entries of
    ``configs/_base_/datasets/coco_regions_2view.py``'s view pipeline
    between its crop and its flip)."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/coco_regions_2view.py'))
    return copy.deepcopy(cfg.to_dict()['view_pipeline'][1:-1])


def _pipelines(store, photometric):
    extra = _photometric() if photometric else []
    ours_view = [
        dict(
            type='RegionRandomResizedCrop',
            scale=224,
            crop_ratio_range=(0.1, 1.0),
            min_kept_ratio=0.6,
            min_area=144)
    ] + extra + [dict(type='RegionRandomFlip', prob=0.5)]
    ours = [
        dict(type='LoadProposals', proposal_file=store, topk=100),
        dict(type='MultiViewRegions', num_views=2, transforms=[ours_view]),
        dict(type='PackRegionInputs'),
    ]
    base_view = [
        dict(
            type='mmpretrain.RandomResizedCrop',
            scale=224,
            crop_ratio_range=(0.1, 1.0),
            backend='cv2')
    ] + extra + [dict(type='mmpretrain.RandomFlip', prob=0.5)]
    base = [
        dict(type='mmpretrain.MultiView', num_views=2, transforms=[base_view]),
        dict(type='mmpretrain.PackInputs'),
    ]
    return ([TRANSFORMS.build(t)
             for t in ours], [TRANSFORMS.build(t) for t in base])


def _runner(pipeline, samples):
    """One pass of ``pipeline`` over ``samples`` (numpy RNG seeded alike)."""

    def run():
        np.random.seed(0)
        for s in samples:
            res = copy.copy(s)
            for t in pipeline:
                res = t(res)

    return run


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-images', type=int, default=32)
    parser.add_argument('--num-boxes', type=int, default=50)
    bu.add_common_args(parser, rounds=3, warmup=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)  # as in a dataloader worker

    rng = np.random.default_rng(0)
    samples, boxes = [], {}
    for i in range(args.num_images):
        h, w = 480, 640
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        x1 = rng.uniform(0, w - 40, args.num_boxes)
        y1 = rng.uniform(0, h - 40, args.num_boxes)
        x2 = np.minimum(x1 + rng.uniform(20, 300, args.num_boxes), w)
        y2 = np.minimum(y1 + rng.uniform(20, 300, args.num_boxes), h)
        boxes[f'{i}.jpg'] = np.stack([x1, y1, x2, y2], 1).astype(np.float32)
        samples.append(
            dict(
                img=img,
                img_path=f'{i}.jpg',
                proposal_key=f'{i}.jpg',
                img_shape=(h, w),
                ori_shape=(h, w)))
    store = _DictStore(boxes)

    setting = (f'{args.num_images} images 640x480 in memory, '
               f'{args.num_boxes} proposals each, two 224-px views, one '
               'torch thread (a dataloader worker)')
    print(f'setting: {setting}; ratio = ours / mmpretrain MultiView')
    res = dict(
        name='region_pipeline',
        title='Region two-view pipeline / mmpretrain MultiView',
        setting=setting,
        sizes=dict(num_images=args.num_images, num_boxes=args.num_boxes),
        baseline='mmpretrain',
        target=None,
        comparisons={})
    with DefaultScope.overwrite_default_scope('mmregion'):
        for name, photometric in [('geometry', False), ('full', True)]:
            ours, base = _pipelines(store, photometric)
            r = bu.interleaved(
                dict(
                    mmpretrain=_runner(base, samples),
                    ours=_runner(ours, samples)), 'mmpretrain', args.rounds,
                args.warmup)
            per_img = {
                k: v / args.num_images
                for k, v in r['median_ms'].items()
            }
            print(f'{name:>13}: mmpretrain {per_img["mmpretrain"]:7.2f} '
                  f'ms/img, ours {per_img["ours"]:7.2f} ms/img, ratio '
                  f'{r["ratios"]["ours"]["median"]:5.2f} (rounds: ' +
                  ', '.join(f'{x:.2f}'
                            for x in r['ratios']['ours']['rounds']) + ')')
            r['ms_per_image'] = per_img
            res['comparisons'][name] = r

        # stack_regions vs pad_sequence on a batch of 32 variable-K samples
        from mmpretrain.structures import DataSample
        batch = []
        for k in rng.integers(0, 60, 32):
            s = DataSample()
            s.boxes = torch.rand(2, int(k), 4)
            batch.append(s)

        def _pad():
            seqs = [s.boxes.transpose(0, 1) for s in batch]
            out = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
            return out.permute(0, 2, 1, 3)

        def _repeat(fn, n=200):
            return lambda: [fn() for _ in range(n)]

        r = bu.interleaved(
            dict(
                pad_sequence=_repeat(_pad),
                stack_regions=_repeat(lambda: stack_regions(batch, 2))),
            'pad_sequence', args.rounds, args.warmup)
        us = {k: v * 1e3 / 200 for k, v in r['median_ms'].items()}
        print(f'stack_regions: pad_sequence {us["pad_sequence"]:7.1f} us, '
              f'ours {us["stack_regions"]:7.1f} us, ratio '
              f'{r["ratios"]["stack_regions"]["median"]:5.2f} (batch 32, '
              'ours also builds the mask)')
        r['us_per_call'] = us
        res['comparisons']['stack_regions'] = r
    return bu.finish(res, args)


if __name__ == '__main__':
    main()
