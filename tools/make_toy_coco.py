"""Write the synthetic toy COCO set (see ``docs/design.md`` section 5).

Example::

    python tools/make_toy_coco.py data/toy_coco --num-train 200 --num-val 50
"""
import argparse
import os.path as osp
import sys
import time

try:
    from mmregion.utils.toy_data import make_toy_coco
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmregion.utils.toy_data import make_toy_coco


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small synthetic COCO-format detection set.')
    parser.add_argument('out', help='output root directory')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--size', type=int, default=256, help='image side')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    paths = make_toy_coco(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        size=args.size,
        seed=args.seed)
    print(f'Wrote {args.num_train} train + {args.num_val} val images to '
          f'{args.out} in {time.time() - start:.1f}s')
    for k in ('train_ann', 'val_ann'):
        print(f'  {k}: {paths[k]}')


if __name__ == '__main__':
    main()
