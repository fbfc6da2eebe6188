"""Draw the augmented views of a pre-training pipeline side by side.

Runs the config's ``train_dataloader.dataset`` (its pipeline included) over
the first ``--num`` samples and writes one PNG per sample: the views next to
each other, region ``k`` drawn in the same colour in every view (the matched
box pairs that the region-level losses contrast). The check to run before a
long pre-training: are the regions where the objects are, and do the pairs
match?

Example::

    python tools/analysis_tools/browse_views.py \
        configs/mmregion/ccop_r18_toy.py --output-dir work_dirs/views --num 8
"""
import argparse
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

import mmregion  # noqa: F401  (registers the modules)
from mmregion.apis.cli import (add_cfg_options_args, apply_cfg_options,
                               load_config, run_cli)
from mmregion.apis.visualization import draw_boxes, region_colours, write_image
from mmregion.utils.errors import UserError

GAP = 8  # pixels between two views


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the augmented views of a config\'s training '
        'pipeline side by side, matched regions in the same colour.')
    parser.add_argument('config', help='pre-training config file')
    parser.add_argument(
        '--output-dir',
        default='work_dirs/browse_views',
        help='folder of the PNG files')
    parser.add_argument(
        '--num', type=int, default=10, help='number of samples to draw')
    parser.add_argument(
        '--scale',
        type=float,
        default=2.,
        help='enlarge the views by this factor for drawing (default 2: the '
        'toy views are 96 px)')
    parser.add_argument(
        '--show', action='store_true', help='also show every image')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each image is shown with --show (0: wait for a key)')
    add_cfg_options_args(parser)
    return parser.parse_args(argv)


def to_image(view) -> np.ndarray:
    """A packed ``(3, H, W)`` tensor (uint8 or float, BGR) as a uint8 image."""
    arr = view.detach().cpu().numpy() if hasattr(view, 'detach') else \
        np.asarray(view)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 2 or arr.shape[2] == 1:
        arr = np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, 2)
    return np.clip(arr, 0, 255).astype(np.uint8)


def draw_views(views, boxes=None, labels=None, scale=1.) -> np.ndarray:
    """Views side by side; box ``boxes[v, k]`` in colour ``k`` on view ``v``.

    Args:
        views (list[np.ndarray]): V uint8 ``(H_v, W_v, 3)`` images.
        boxes (np.ndarray, optional): ``(V, K, 4)`` xyxy boxes per view.
        labels (Sequence, optional): K region labels. Defaults to indices.
        scale (float): Enlarge views and boxes by this factor. Defaults to 1.

    Returns:
        np.ndarray: ``(max H, sum W + gaps, 3)`` uint8 image.
    """
    num_regions = 0 if boxes is None else boxes.shape[1]
    colours = region_colours(num_regions)
    if scale != 1:
        views = [
            cv2.resize(
                v, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            for v in views
        ]
        boxes = None if boxes is None else boxes * scale
    height = max(v.shape[0] for v in views)
    panels = []
    for i, view in enumerate(views):
        if boxes is not None and num_regions:
            view = draw_boxes(view, boxes[i], colours, labels)
        panel = np.full((height, view.shape[1], 3), 255, np.uint8)
        panel[:view.shape[0]] = view
        panels.append(panel)
        if i + 1 < len(views):
            panels.append(np.full((height, GAP, 3), 255, np.uint8))
    return np.concatenate(panels, axis=1)


def main(argv=None):
    args = parse_args(argv)
    if args.num < 1 or args.scale <= 0:
        raise UserError(f'--num must be >= 1 and --scale > 0, got {args.num} '
                        f'and {args.scale}')
    cfg = load_config(args.config)
    apply_cfg_options(cfg, args)
    loader = cfg.get('train_dataloader')
    if loader is None or 'dataset' not in loader:
        raise UserError(f'config {args.config} has no '
                        'train_dataloader.dataset')
    from mmengine.registry import init_default_scope

    from mmregion.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmregion'))
    dataset = DATASETS.build(loader['dataset'])
    num = min(args.num, len(dataset))
    written, total_regions = 0, 0
    for idx in range(num):
        sample = dataset[idx]
        inputs = sample['inputs']
        views = [
            to_image(v)
            for v in (inputs if isinstance(inputs, (list,
                                                    tuple)) else [inputs])
        ]
        data_sample = sample.get('data_samples')
        boxes = getattr(data_sample, 'boxes', None)
        labels = None
        if boxes is not None:
            boxes = boxes.cpu().numpy() if hasattr(boxes, 'cpu') else \
                np.asarray(boxes)
            total_regions += boxes.shape[1]
            ids = getattr(data_sample, 'region_ids', None)
            if ids is not None:
                labels = [int(i) for i in ids]
        canvas = draw_views(views, boxes, labels, args.scale)
        img_path = (
            data_sample.metainfo.get('img_path', '')
            if data_sample is not None else '')
        stem = osp.splitext(osp.basename(img_path))[0] or 'sample'
        out = osp.join(args.output_dir, f'{idx:04d}_{stem}.png')
        write_image(canvas, out)
        written += 1
        if args.show:
            cv2.imshow('views', canvas)
            cv2.waitKey(int(args.wait_time * 1000))
    note = (f', {total_regions / max(written, 1):.1f} regions per sample'
            if total_regions else ', no region boxes in the packed samples')
    print(f'wrote {written} images to {args.output_dir}{note}')


if __name__ == '__main__':
    run_cli(main)
