"""Draw proposals on their images (PNG files) to inspect a proposal store.

Example::

    python tools/browse_proposals.py data/coco/proposals/train2017 \
        data/coco/train2017 work_dirs/browse --num 10 --topk 20
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

try:
    from mmregion.proposals import load_proposal_store
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmregion.proposals import load_proposal_store

from mmregion.apis.cli import run_tool
from mmregion.apis.visualization import draw_boxes
from mmregion.proposals.generate import read_image
from mmregion.utils.input_checks import InputError, check_file_name


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Draw proposals to PNG files.')
    p.add_argument('proposals', help='proposal directory, .pkl or .json')
    p.add_argument('img_root', help='root of the image keys')
    p.add_argument('out_dir')
    p.add_argument('--num', type=int, default=10, help='images to draw')
    p.add_argument('--topk', type=int, default=20, help='boxes per image')
    p.add_argument(
        '--ann-file', default=None, help='COCO json for a list-style pickle')
    p.add_argument(
        '--allow-unsafe-paths',
        action='store_true',
        help='draw keys that are absolute or contain ../ (refused by '
        'default: they read outside IMG_ROOT)')
    args = p.parse_args(argv)
    for name in ('num', 'topk'):  # a negative slice drew all but |n|
        if getattr(args, name) < 1:
            p.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    return args


def draw(img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Draw xyxy boxes in distinct colours, box 0 (thick) on top."""
    return draw_boxes(img, boxes, thick_first=True)


def main(argv=None):
    args = parse_args(argv)
    store = load_proposal_store(
        args.proposals,
        ann_file=args.ann_file,
        allow_unsafe_paths=args.allow_unsafe_paths)
    os.makedirs(args.out_dir, exist_ok=True)
    written = 0
    for key in store.keys()[:args.num]:
        try:
            check_file_name(key, f'proposal store {args.proposals}',
                            args.allow_unsafe_paths)
        except InputError as e:
            print(f'skip: {e}', file=sys.stderr)
            continue
        path = osp.join(args.img_root, key)
        img, reason = read_image(path)
        if img is None:
            print(f'skip {path}: {reason}', file=sys.stderr)
            continue
        boxes = store.get(key)[:args.topk]
        name = key.replace('/', '__').rsplit('.', 1)[0] + '.png'
        cv2.imwrite(osp.join(args.out_dir, name), draw(img, boxes))
        written += 1
    print(f'Wrote {written} images to {args.out_dir}')


if __name__ == '__main__':
    run_tool(main)
