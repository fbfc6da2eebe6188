"""Cost of the region-aware two-view pipeline against mmpretrain's MultiView.

Both pipelines run in this process (one torch thread, as in a dataloader
worker) on the same in-memory images (no disk
I/O) with the same RNG seed; the ratios are ours / mmpretrain's MoCo v2-style
image-only pipeline (``MultiView`` + ``PackInputs``):

- ``geometry``: crop + flip only (our crop also maps and filters the boxes);
- ``full``: with colour jitter, grayscale and blur (the CCOP recipe);
- ``stack_regions``: our padding of a batch of region boxes against
  ``torch.nn.utils.rnn.pad_sequence``.

Usage: ``python benchmarks/bench_region_pipeline.py [--num-images 32]
[--repeats 3] [--num-boxes 50]``
"""
import argparse
import copy
import time

import numpy as np
import torch
from mmengine.registry import DefaultScope

from mmregion.models.utils import stack_regions
from mmregion.registry import TRANSFORMS


class _DictStore:

    def __init__(self, boxes):
        self.boxes = boxes

    def get(self, key):
        return self.boxes.get(key)


def _photometric():
    return [
        dict(
            type='mmpretrain.RandomApply',
            transforms=[
                dict(
                    type='mmpretrain.ColorJitter',
                    brightness=0.4,
                    contrast=0.4,
                    saturation=0.2,
                    hue=0.1)
            ],
            prob=0.8),
        dict(
            type='mmpretrain.RandomGrayscale',
            prob=0.2,
            keep_channels=True,
            channel_weights=(0.114, 0.587, 0.2989)),
        dict(
            type='mmpretrain.GaussianBlur',
            magnitude_range=(0.1, 2.0),
            magnitude_std='inf',
            prob=0.5),
    ]


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


def _time(pipeline, samples, repeats):
    best = float('inf')
    for r in range(repeats):
        np.random.seed(r)
        t0 = time.perf_counter()
        for s in samples:
            res = copy.copy(s)
            for t in pipeline:
                res = t(res)
        best = min(best, time.perf_counter() - t0)
    return best / len(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-images', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--num-boxes', type=int, default=50)
    args = parser.parse_args()
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

    print(f'{args.num_images} images 640x480, {args.num_boxes} proposals, '
          'two 224-px views; best of '
          f'{args.repeats}; ratio = ours / mmpretrain MultiView')
    with DefaultScope.overwrite_default_scope('mmregion'):
        for name, photometric in [('geometry', False), ('full', True)]:
            ours, base = _pipelines(store, photometric)
            t_base = _time(base, samples, args.repeats)
            t_ours = _time(ours, samples, args.repeats)
            print(f'{name:>13}: mmpretrain {t_base * 1e3:7.2f} ms/img, '
                  f'ours {t_ours * 1e3:7.2f} ms/img, '
                  f'ratio {t_ours / t_base:5.2f}')

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

        for fn_name, fn in [('pad_sequence', _pad),
                            ('stack', lambda: stack_regions(batch, 2))]:
            fn()
            t0 = time.perf_counter()
            for _ in range(200):
                fn()
            t = (time.perf_counter() - t0) / 200
            if fn_name == 'pad_sequence':
                t_pad = t
            else:
                print(f'stack_regions: pad_sequence {t_pad * 1e6:7.1f} us, '
                      f'ours {t * 1e6:7.1f} us, ratio {t / t_pad:5.2f} '
                      '(batch 32, ours also builds the mask)')


if __name__ == '__main__':
    main()
