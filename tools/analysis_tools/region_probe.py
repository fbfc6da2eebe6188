"""Region probe: frozen backbones against random init on ground-truth boxes.

The transfer benchmark's primary metric (:mod:`mmregion.apis.transfer.probe`)
as a command: for every backbone, RoIAlign features at the ground-truth boxes
(C3-C5, spatial bins kept, BN statistics recomputed on the same unlabelled
images for every backbone), a linear classifier trained on the train boxes
(its L2 penalty chosen on a dev split of the train *images*) and tested on
the test boxes. Every backbone is compared with random init **on the same
test boxes**: the paired difference, its bootstrap interval (99 % for the
default ``--alpha 0.01``) and McNemar's exact p-value, so a reader sees
whether a difference is larger than the noise of this test set.

Example (what ``tools/demo.sh`` runs)::

    python tools/analysis_tools/region_probe.py \\
        data/toy_coco/annotations/instances_train.json data/toy_coco/train \\
        data/toy_coco/annotations/instances_val.json data/toy_coco/val \\
        --checkpoint CCOP=work_dirs/demo/ccop_backbone.pth \\
        --out work_dirs/demo/region_probe.json
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('train_ann', help='COCO json of the labelled train boxes')
    p.add_argument('train_img', help='image folder of train_ann')
    p.add_argument('test_ann', help='COCO json of the test boxes')
    p.add_argument('test_img', help='image folder of test_ann')
    p.add_argument(
        '--checkpoint',
        action='append',
        default=[],
        metavar='NAME=PATH',
        help='a backbone to probe (pre-training or exported checkpoint); '
        'repeat for several. Random init is always probed as the baseline')
    p.add_argument('--depth', type=int, default=18)
    p.add_argument('--base-channels', type=int, default=64)
    p.add_argument(
        '--dev-frac',
        type=float,
        default=0.25,
        help='share of the train images held out to choose the L2 penalty')
    p.add_argument(
        '--bn-images',
        type=int,
        default=64,
        help='train images the BN statistics are recomputed on')
    p.add_argument('--scale', type=float, default=2.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--alpha', type=float, default=0.01)
    p.add_argument('--out', help='write the results as JSON here')
    return p.parse_args(argv)


def _named(specs):
    out = {}
    for spec in specs:
        name, sep, path = spec.partition('=')
        if not sep or not name or not path:
            raise ValueError(f'--checkpoint {spec!r}: expected NAME=PATH')
        if name == 'random' or name in out:
            raise ValueError(f'--checkpoint {spec!r}: the name {name!r} is '
                             'taken (random init is always probed)')
        if not osp.isfile(path):
            raise ValueError(f'--checkpoint {spec!r}: no file {path}')
        out[name] = path
    return out


def compare(results: dict, baseline: str = 'random', alpha: float = 0.01):
    """Paired comparisons of every probed backbone with ``baseline``.

    Args:
        results (dict): name -> output of ``region_probe``.
        baseline (str): The name compared against.
        alpha (float): Significance level of the verdict.

    Returns:
        dict: name -> ``diff``, ``low``, ``high`` (paired bootstrap
        interval at level ``1 - alpha``, points), ``p`` (McNemar),
        ``verdict``.
    """
    from mmregion.apis.transfer.stats import mcnemar, paired_bootstrap
    base = results[baseline]['linear']['correct']
    out = {}
    for name, res in results.items():
        if name == baseline:
            continue
        mine = res['linear']['correct']
        boot = paired_bootstrap(mine, base, level=1 - alpha)
        p = mcnemar(mine, base)['p']
        if p >= alpha:
            verdict = 'no significant difference'
        else:
            verdict = 'better' if boot['diff'] > 0 else 'worse'
        out[name] = dict(
            diff=boot['diff'],
            low=boot['low'],
            high=boot['high'],
            p=p,
            verdict=verdict)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        checkpoints = _named(args.checkpoint)
        for f in (args.train_ann, args.test_ann):
            if not osp.isfile(f):
                raise ValueError(f'no annotation file {f}')
        if not 0 < args.dev_frac < 1:
            raise ValueError(f'--dev-frac {args.dev_frac}: expected a value '
                             'in (0, 1)')
    except ValueError as e:
        print(f'region_probe: error: {e}', file=sys.stderr)
        return 2
    import tempfile

    from mmregion.apis.transfer.data import split_dev_test
    from mmregion.apis.transfer.probe import region_probe
    with open(args.train_ann) as f:
        names = [im['file_name'] for im in json.load(f)['images']]
    with tempfile.TemporaryDirectory() as tmp:
        train_ann = osp.join(tmp, 'train.json')
        dev_ann = osp.join(tmp, 'dev.json')
        split_dev_test(args.train_ann, dev_ann, train_ann,
                       max(1, round(args.dev_frac * len(names))), args.seed)
        splits = dict(
            train=(train_ann, args.train_img),
            dev=(dev_ann, args.train_img),
            test=(args.test_ann, args.test_img))
        with open(args.test_ann) as f:
            num_classes = len(json.load(f)['categories'])
        bn_images = [
            osp.join(args.train_img, n) for n in names[:args.bn_images]
        ]
        results = {}
        for name, ckpt in [('random', None), *checkpoints.items()]:
            results[name] = region_probe(
                ckpt,
                splits,
                bn_images,
                num_classes,
                depth=args.depth,
                base_channels=args.base_channels,
                scale=args.scale,
                seed=args.seed)
    comparisons = compare(results, alpha=args.alpha)
    n = results['random']['num_boxes']
    print(f'region probe (linear, frozen ResNet-{args.depth}): '
          f'{n["train"]} train / {n["dev"]} dev / {n["test"]} test boxes, '
          f'{num_classes} classes')
    level = 100 * (1 - args.alpha)
    print(f'  {"backbone":<12} {"linear %":>9} {"k-NN %":>8}   vs random '
          f'init ({level:g} % interval, McNemar p)')
    for name, res in results.items():
        line = (f'  {name:<12} {res["linear"]["acc"]:9.1f} '
                f'{res["knn"]["acc"]:8.1f}')
        if name in comparisons:
            c = comparisons[name]
            line += (f'   {c["diff"]:+.1f} [{c["low"]:+.1f}, '
                     f'{c["high"]:+.1f}] p={c["p"]:.2g}: {c["verdict"]}')
        print(line)
    if args.out:
        from mmregion.utils.atomic_io import atomic_write_json
        atomic_write_json(
            args.out,
            dict(
                args=vars(args),
                results={
                    k:
                    dict(
                        linear_acc=v['linear']['acc'],
                        knn_acc=v['knn']['acc'],
                        weight_decay=v['linear']['weight_decay'],
                        num_boxes=v['num_boxes'])
                    for k, v in results.items()
                },
                comparisons=comparisons))
        print(f'Wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
