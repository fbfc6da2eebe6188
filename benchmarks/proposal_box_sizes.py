"""Box-size histogram of proposal stores (the size bias of an NMS order).

Prints, per store, the share of boxes in ``sqrt(w * h)`` bins (pixels of the
original image) and the mean, as a markdown table; used for the table in
``docs/proposals.md`` (random-score vs OpenCV-order NMS).

Example::

    python tools/generate_proposals.py data/toy_coco/annotations/\
instances_train.json work_dirs/ss_random --nms-priority random
    python tools/generate_proposals.py data/toy_coco/annotations/\
instances_train.json work_dirs/ss_opencv --nms-priority opencv
    python benchmarks/proposal_box_sizes.py work_dirs/ss_random \
        work_dirs/ss_opencv
"""
import argparse
import os.path as osp
import sys

import numpy as np

try:
    from mmregion.proposals import load_proposal_store
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmregion.proposals import load_proposal_store


def size_histogram(store, edges):
    """(share per bin, mean sqrt(area), number of boxes) of a store."""
    sizes = []
    for key in store.keys():
        b = store.get(key)
        if b is not None and len(b):
            sizes.append(np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
    sizes = np.concatenate(sizes) if sizes else np.zeros(0)
    counts, _ = np.histogram(sizes, bins=edges)
    return counts / max(len(sizes), 1), float(sizes.mean()), len(sizes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('stores', nargs='+', help='proposal stores')
    p.add_argument(
        '--edges',
        type=float,
        nargs='+',
        default=[0, 20, 32, 48, 64, 96, 128, 256, 1e9],
        help='bin edges of sqrt(w*h) in pixels')
    args = p.parse_args(argv)
    edges = np.asarray(args.edges)
    names = [
        f'{a:g}-{b:g}' if b < 1e9 else f'>= {a:g}'
        for a, b in zip(edges[:-1], edges[1:])
    ]
    print('| store | boxes | mean | ' + ' | '.join(names) + ' |')
    print('|---' * (len(names) + 3) + '|')
    for path in args.stores:
        share, mean, n = size_histogram(load_proposal_store(path), edges)
        cells = ' | '.join(f'{100 * s:.1f}%' for s in share)
        print(f'| {path} | {n} | {mean:.1f} | {cells} |')


if __name__ == '__main__':
    main()
