"""Write the synthetic toy COCO set (see ``docs/design.md`` section 5).

Example::

    python tools/make_toy_coco.py data/toy_coco --num-train 200 --num-val 50
    # the harder 10-category set of the transfer benchmark
    # (mmregion/testing/toy_data_hard.py): 3000 unlabeled train images, a 3 %
    # labelled split annotations/instances_train_labeled.json, 200 val
    python tools/make_toy_coco.py data/toy_hard --preset hard
"""
import argparse
import os.path as osp
import sys
import time

try:
    from mmregion.testing.toy_data import make_toy_coco
    from mmregion.testing.toy_data_hard import make_hard_toy_coco
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmregion.testing.toy_data import make_toy_coco
    from mmregion.testing.toy_data_hard import make_hard_toy_coco

# defaults of every preset (explicit flags override them)
PRESETS = dict(
    default=dict(num_train=200, num_val=50, size=256),
    hard=dict(num_train=3000, num_val=200, size=128, labeled_frac=0.03))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small synthetic COCO-format detection set.')
    parser.add_argument('out', help='output root directory')
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        default='default',
        help='default: 4 colour-coded categories; hard: 10 categories told '
        'apart by shape + pattern only, cluttered, with a labelled split')
    parser.add_argument('--num-train', type=int, default=None)
    parser.add_argument('--num-val', type=int, default=None)
    parser.add_argument('--size', type=int, default=None, help='image side')
    parser.add_argument(
        '--labeled-frac',
        type=float,
        default=None,
        help='(hard) fraction of train in instances_train_labeled.json')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.preset != 'hard' and args.labeled_frac is not None:
        parser.error('--labeled-frac needs --preset hard')
    for name, low in (('num_train', 1), ('num_val', 0), ('size', 1)):
        if getattr(args, name) < low:
            parser.error(f'--{name.replace("_", "-")} must be >= {low}, got '
                         f'{getattr(args, name)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    kwargs = dict(
        num_train=args.num_train,
        num_val=args.num_val,
        size=args.size,
        seed=args.seed)
    if args.preset == 'hard':
        paths = make_hard_toy_coco(
            args.out, labeled_frac=args.labeled_frac, **kwargs)
    else:
        paths = make_toy_coco(args.out, **kwargs)
    print(f'Wrote {args.num_train} train + {args.num_val} val images to '
          f'{args.out} in {time.time() - start:.1f}s')
    for k in ('train_ann', 'train_labeled_ann', 'val_ann'):
        if k in paths:
            print(f'  {k}: {paths[k]}')


if __name__ == '__main__':
    main()
