"""Generate unsupervised region proposals for a set of images.

Examples::

    # selective search (CCOP's filters) for COCO train2017, 8 processes
    python tools/generate_proposals.py \
        data/coco/annotations/instances_train2017.json \
        data/coco/proposals/ss_train2017 --img-root data/coco/train2017 \
        --workers 8
    # an image folder (keys: paths relative to the folder)
    python tools/generate_proposals.py data/imagenet/train \
        data/imagenet/proposals/ss_train --workers 16
    # exactly CCOP's official settings (full resolution) / DETReg's
    python tools/generate_proposals.py SRC OUT --preset ccop
    python tools/generate_proposals.py SRC OUT --preset detreg

Re-running the same command resumes (finished shards are skipped); killing
it at any moment leaves only complete files. See docs/proposals.md.
"""
import argparse
import os.path as osp
import sys

try:
    from mmregion.proposals import generate_proposals
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmregion.proposals import generate_proposals

from mmregion.apis.cli import run_tool
from mmregion.proposals.generate import PRESETS


def _optional_int(s: str):
    return None if s.lower() in ('none', '0', '-1') else int(s)


def _optional_float(s: str):
    return None if s.lower() == 'none' else float(s)


def _build_parser():
    p = argparse.ArgumentParser(
        description='Generate region proposals (sharded, resumable).')
    p.add_argument('src', help='image directory or COCO json')
    p.add_argument('out', help='output proposal directory')
    p.add_argument(
        '--img-root',
        default=None,
        help='root of the image keys (default: SRC for a directory; '
        '<json dir>/../<split> for annotations/instances_<split>.json)')
    p.add_argument(
        '--method',
        default='selective_search',
        choices=['selective_search', 'grid', 'random'])
    p.add_argument(
        '--mode',
        default='fast',
        choices=['fast', 'quality', 'single'],
        help='selective-search mode (CCOP: fast)')
    p.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        default=None,
        help='settings of a paper (flags given explicitly win): ccop = '
        'CCOP tools/selective_search.py (full resolution, random-score '
        'NMS, top 50); detreg = DETReg selfdet.py (128x128 squash, RGB, '
        'no filter, no NMS, OpenCV order, first 200 stored)')
    p.add_argument(
        '--max-side',
        type=_optional_int,
        default=500,
        help='longest side of the working scale (0/none: full resolution, '
        'as CCOP)')
    p.add_argument(
        '--squash-size',
        type=_optional_int,
        default=None,
        help='search on the image resized to SxS, aspect not kept '
        '(DETReg: 128); overrides --max-side')
    p.add_argument(
        '--rgb',
        dest='swap_rb',
        action='store_true',
        help='feed OpenCV the RGB image, as DETReg does (PIL input)')
    p.add_argument(
        '--nms-priority',
        choices=['random', 'opencv'],
        default='random',
        help='order of NMS and top-k: random = CCOP\'s random-score NMS '
        '(seeded per image from its key: deterministic whatever the '
        'workers); opencv = OpenCV\'s order (rand()*level ascending, '
        'favours small low-level segments; not a quality ranking)')
    p.add_argument(
        '--topk',
        type=_optional_int,
        default=50,
        help='boxes kept per image (CCOP: 50; none: all)')
    p.add_argument(
        '--min-size',
        type=float,
        default=20.,
        help='minimum sqrt(w*h) in pixels (CCOP: 20)')
    p.add_argument(
        '--min-aspect',
        type=_optional_float,
        default=1. / 3.,
        help='minimum w/h, exclusive (CCOP: 1/3; none: off)')
    p.add_argument(
        '--max-aspect',
        type=_optional_float,
        default=3.,
        help='maximum w/h, exclusive (CCOP: 3; none: off)')
    p.add_argument('--min-rel-area', type=float, default=0.)
    p.add_argument('--max-rel-area', type=float, default=1.)
    p.add_argument(
        '--nms-iou',
        type=_optional_float,
        default=0.5,
        help='NMS IoU (CCOP: 0.5; none: off)')
    p.add_argument(
        '--grid-sizes',
        type=int,
        nargs='+',
        default=[4],
        help='n of the n x n grids (--method grid)')
    p.add_argument(
        '--num-random', type=int, default=50, help='(--method random)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--shard-size', type=int, default=1000)
    p.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an earlier run with different settings in OUT')
    p.add_argument(
        '--allow-unsafe-paths',
        action='store_true',
        help='accept absolute and ../ file_names in a COCO json (refused by '
        'default: they read outside the image root)')
    p.add_argument(
        '--max-failed-ratio',
        type=float,
        default=0.5,
        help='stop with an error when more than this share of the images '
        'cannot be read (a wrong --img-root); 1 never stops')
    p.add_argument('--no-progress', action='store_true')
    return p


def parse_args(argv=None):
    p = _build_parser()
    args = p.parse_args(argv)
    if args.preset:  # preset values become defaults; explicit flags win
        p.set_defaults(**PRESETS[args.preset])
        args = p.parse_args(argv)
    return args


def main(argv=None):
    args = parse_args(argv)
    stats = generate_proposals(
        args.src,
        args.out,
        img_root=args.img_root,
        method=args.method,
        mode=args.mode,
        max_side=args.max_side,
        min_size=args.min_size,
        min_aspect=args.min_aspect,
        max_aspect=args.max_aspect,
        min_rel_area=args.min_rel_area,
        max_rel_area=args.max_rel_area,
        nms_iou=args.nms_iou,
        topk=args.topk,
        grid_sizes=args.grid_sizes,
        num_random=args.num_random,
        seed=args.seed,
        workers=args.workers,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        nms_priority=args.nms_priority,
        squash_size=args.squash_size,
        swap_rb=args.swap_rb,
        allow_unsafe_paths=args.allow_unsafe_paths,
        max_failed_ratio=args.max_failed_ratio)
    print(f'Proposals in {args.out}: {stats["total"]} images; '
          f'{stats["done"]} done, {stats["skipped"]} skipped (already done), '
          f'{stats["failed"]} failed (total failed {stats["failed_total"]}); '
          f'{stats["mean_boxes"]:.1f} boxes/image on average, '
          f'{stats["empty"]} images with no box; '
          f'{stats["images_per_s"]:.1f} images/s')


if __name__ == '__main__':
    run_tool(main)
