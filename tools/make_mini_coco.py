"""Make nested, seeded image-level subsets of a COCO annotation file.

This is the "mini-COCO" protocol of DETReg (``--filter_pct``: a random
``round(pct * num_images)`` images of train2017, github amirbar/DETReg
``datasets/coco.py``) and ProSeCo (mini-COCO 1 % / 5 % / 10 %), made
reproducible and nested:

* one seeded permutation of all images (sorted by id first, so the order of
  the input file does not matter) is drawn with
  ``numpy.random.default_rng(seed)``; the split of ``p`` % is the first
  ``max(1, round(p / 100 * num_images))`` images of it, so the 1 % split is
  contained in the 5 % split, which is contained in the 10 % split;
* every category that has an instance in the input must appear in every
  split: when a split misses a category, the first image (in permutation
  order) beyond the split that has it is swapped with the last image of the
  split's *own* window (images not in any smaller split) whose categories are
  all still covered without it. Swaps are deterministic and keep the nesting.
  If no such swap exists the script fails (``--allow-missing`` only warns).

``--split-mode detreg`` draws DETReg's splits instead, for comparability
with its numbers: each split independently, ``numpy.random.default_rng(S)
.choice(ids, size=round(num_images * p / 100), replace=False)`` over the
image ids sorted ascending (torchvision's ``CocoDetection`` order that
DETReg's ``datasets/coco.py`` filters; ``--seed`` defaults to DETReg's 42
there). The splits are then neither nested nor guaranteed to hold every
category (missing ones are reported, not fixed). For VOC, DETReg draws over
its own image-list order (``datasets/torchvision_datasets/voc.py``); with a
COCO-format VOC file converted in that order, ``--detreg-order file`` draws
over the file's ``images`` order.

Outputs (written atomically: ``mmregion.utils.atomic_io``)::

    OUT/{stem}_{p}pct_seed{S}.json   # e.g. instances_train2017_1pct_seed0.json
    OUT/{stem}_mini_summary_seed{S}.json
    # --split-mode detreg: OUT/{stem}_{p}pct_detreg_seed{S}.json and
    # OUT/{stem}_mini_summary_detreg_seed{S}.json

where ``stem`` is the input file name without ``.json``. The subsets keep the
input's ``categories``, ``licenses`` and ``info`` (plus an ``info.mini_coco``
record of percent, seed, source and number of swaps).

Usage::

    python tools/make_mini_coco.py \
        data/coco/annotations/instances_train2017.json \
        data/coco/annotations/mini --percent 1 5 10 --seed 0
    # DETReg's own (independent, seed 42) splits
    python tools/make_mini_coco.py \
        data/coco/annotations/instances_train2017.json \
        data/coco/annotations/mini --percent 1 2 5 10 --split-mode detreg
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np

try:
    from mmregion.utils.atomic_io import atomic_write_json
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmregion.utils.atomic_io import atomic_write_json

from mmregion.utils.input_checks import InputError, check_file_name, show_value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unique_int_ids(entries: list, name: str, what: str, path: str,
                    why: str) -> set:
    """The ids of ``entries``: each a dict with an int ``id``, unique."""
    ids: set = set()
    for i, entry in enumerate(entries):
        where = f'make_mini_coco: {name}[{i}] of {path}'
        if not isinstance(entry, dict) or not _is_int(entry.get('id')):
            raise InputError(f'{where}: needs an int "id", got '
                             f'{show_value(entry)}')
        if entry['id'] in ids:
            raise InputError(f'{where}: duplicate {what} id {entry["id"]} '
                             f'{why}'.rstrip())
        ids.add(entry['id'])
    return ids


def _check_entries(coco: dict, path: str) -> None:
    """Refuse entries that would be copied into the splits wrong.

    Category and image ids must be unique ints (a bool is not an id; a
    duplicate category id used to merge two categories), every ``file_name``
    a usable relative path, ``width``/``height`` ints >= 1, every
    annotation's ``category_id`` a category of the file and its ``bbox`` 4
    numbers with ``w, h >= 0``.

    Raises:
        InputError: One line naming the file and the entry.
    """
    cat_ids = _unique_int_ids(coco['categories'], 'categories', 'category',
                              path, '(two categories would be merged)')
    _unique_int_ids(coco['images'], 'images', 'image', path, '')
    for i, img in enumerate(coco['images']):
        where = f'make_mini_coco: images[{i}] of {path}'
        check_file_name(img.get('file_name'), where)
        for key in ('width', 'height'):
            if key in img and not (_is_int(img[key]) and img[key] >= 1):
                raise InputError(f'{where}: {key} must be an int >= 1, got '
                                 f'{show_value(img[key])}')
    for i, ann in enumerate(coco['annotations']):
        where = f'make_mini_coco: annotations[{i}] of {path}'
        if not isinstance(ann, dict):
            raise InputError(f'{where} is not an object: {show_value(ann)}')
        if ann.get('category_id') not in cat_ids or not _is_int(
                ann.get('category_id')):
            raise InputError(f'{where}: category_id '
                             f'{show_value(ann.get("category_id"))} is not '
                             'an id of "categories"')
        bbox = ann.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(_is_num(v)
                        for v in bbox) and bbox[2] >= 0 and bbox[3] >= 0):
            raise InputError(f'{where}: bbox {show_value(bbox)} is not 4 '
                             'numbers [x, y, w, h] with w, h >= 0')


def _load_coco(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f'make_mini_coco: {path} does not exist')
    with open(path) as f:
        coco = json.load(f)
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            raise KeyError(f'make_mini_coco: {path} has no list "{key}" '
                           '(is it a COCO instances file?)')
    _check_entries(coco, path)
    return coco


def percent_tag(p: float) -> str:
    """``1`` -> ``'1'``, ``0.5`` -> ``'0.5'`` (used in file names)."""
    return f'{p:g}'


def split_sizes(num_images: int, percents: Sequence[float]) -> List[int]:
    """``max(1, round(p / 100 * num_images))`` for every percent."""
    return [max(1, int(round(p / 100.0 * num_images))) for p in percents]


def nested_splits(image_ids: Sequence[int],
                  image_cats: Dict[int, set],
                  percents: Sequence[float],
                  seed: int,
                  allow_missing: bool = False) -> dict:
    """Compute nested, category-covering image subsets.

    Args:
        image_ids (Sequence[int]): All image ids (any order; sorted inside).
        image_cats (dict[int, set]): Categories annotated in each image
            (images without annotations may be absent).
        percents (Sequence[float]): Split sizes in percent, in (0, 100].
        seed (int): Seed of the permutation.
        allow_missing (bool): Warn instead of failing when a split cannot
            cover every category. Defaults to False.

    Returns:
        dict: ``{percent: dict(image_ids=[...] (permutation order),
        missing=[category ids], swaps=int)}``.

    Raises:
        ValueError: A percent is out of range, or (unless ``allow_missing``)
            a split cannot contain every category.
    """
    for p in percents:
        if not 0 < p <= 100:
            raise ValueError(f'make_mini_coco: percent must be in (0, 100], '
                             f'got {p}')
    ids = sorted(int(i) for i in image_ids)
    if not ids:
        raise ValueError('make_mini_coco: the annotation file has no images')
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    all_cats = sorted(set().union(*image_cats.values())) if image_cats else []

    result = {}
    prev = 0
    for p in sorted(set(percents)):
        n = split_sizes(len(ids), [p])[0]
        n = max(n, prev)
        counts = Counter(c for i in order[:n] for c in image_cats.get(i, ()))
        swaps = 0
        missing = []
        for cat in all_cats:
            if counts[cat] > 0:
                continue
            # first image beyond the split that has the category
            j = next((j for j in range(n, len(order))
                      if cat in image_cats.get(order[j], ())), None)
            # last image of this split's own window that can leave it
            i = None
            for k in range(n - 1, prev - 1, -1):
                cats_k = image_cats.get(order[k], set())
                if all(counts[c] > 1 for c in cats_k):
                    i = k
                    break
            if j is None or i is None:
                missing.append(cat)
                continue
            for c in image_cats.get(order[i], ()):
                counts[c] -= 1
            for c in image_cats.get(order[j], ()):
                counts[c] += 1
            order[i], order[j] = order[j], order[i]
            swaps += 1
        if missing and not allow_missing:
            raise ValueError(
                f'make_mini_coco: the {percent_tag(p)} % split ({n} images) '
                f'cannot contain every category: no deterministic swap covers '
                f'category ids {missing}. Use a larger percent or '
                '--allow-missing.')
        result[p] = dict(
            image_ids=list(order[:n]), missing=missing, swaps=swaps)
        prev = n
    return result


def detreg_splits(image_ids: Sequence[int],
                  image_cats: Dict[int, set],
                  percents: Sequence[float],
                  seed: int = 42,
                  order: str = 'sorted') -> dict:
    """DETReg's independent splits (``datasets/coco.py``, ``--filter_pct``).

    Args:
        image_ids (Sequence[int]): All image ids, in the input file's order.
        image_cats (dict[int, set]): Categories annotated in each image.
        percents (Sequence[float]): Split sizes in percent, in (0, 100].
        seed (int): ``default_rng`` seed (DETReg's ``--seed`` default 42).
        order (str): 'sorted' (ascending ids, DETReg's COCO order) or
            'file' (the input order, DETReg's VOC list if converted alike).

    Returns:
        dict: As :func:`nested_splits` (``swaps`` is always 0; ``missing``
        lists the categories a split lacks).
    """
    for p in percents:
        if not 0 < p <= 100:
            raise ValueError(f'make_mini_coco: percent must be in (0, 100], '
                             f'got {p}')
    if order not in ('sorted', 'file'):
        raise ValueError(f"make_mini_coco: order must be 'sorted' or 'file', "
                         f'got {order!r}')
    ids = [int(i) for i in image_ids]
    if not ids:
        raise ValueError('make_mini_coco: the annotation file has no images')
    if order == 'sorted':
        ids = sorted(ids)
    all_cats = set().union(*image_cats.values()) if image_cats else set()
    result = {}
    for p in sorted(set(percents)):
        # DETReg: round(float(len(ids)) * filter_pct), a fresh rng per split
        n = round(float(len(ids)) * (p / 100.))
        keep = np.random.default_rng(seed).choice(
            ids, size=n, replace=False).tolist()
        cats = set().union(*(image_cats.get(i, set()) for i in keep))
        result[p] = dict(
            image_ids=[int(i) for i in keep],
            missing=sorted(all_cats - cats),
            swaps=0)
    return result


def make_mini_coco(ann_file: str,
                   out_dir: str,
                   percents: Sequence[float] = (1, 5, 10),
                   seed: int = 0,
                   allow_missing: bool = False,
                   verbose: bool = True,
                   split_mode: str = 'nested',
                   detreg_order: str = 'sorted') -> dict:
    """Write the subsets of ``ann_file`` to ``out_dir``.

    Args:
        ann_file (str): COCO instances json.
        out_dir (str): Output folder (created).
        percents (Sequence[float]): Split sizes in percent.
            Defaults to (1, 5, 10).
        seed (int): Permutation seed. Defaults to 0.
        allow_missing (bool): See :func:`nested_splits`.
        verbose (bool): Print the summary. Defaults to True.
        split_mode (str): 'nested' (default) or 'detreg'
            (:func:`detreg_splits`; files get a ``_detreg`` tag).
        detreg_order (str): See :func:`detreg_splits`.

    Returns:
        dict: The summary: ``{'seed', 'source', 'num_images', 'splits':
        {tag: dict(file, num_images, num_instances, instances_per_category,
        missing_categories, swaps)}}``.
    """
    coco = _load_coco(ann_file)
    image_ids = [img['id'] for img in coco['images']]
    anns_by_img: Dict[int, List[dict]] = defaultdict(list)
    image_cats: Dict[int, set] = defaultdict(set)
    known = {img_id for img_id in image_ids}
    skipped = 0
    for ann in coco['annotations']:
        if ann.get('image_id') not in known:
            skipped += 1
            continue
        anns_by_img[ann['image_id']].append(ann)
        image_cats[ann['image_id']].add(ann['category_id'])
    if skipped:
        print(
            f'make_mini_coco: {ann_file}: skipped {skipped} annotations '
            'whose image_id is not in "images"',
            file=sys.stderr)
    if split_mode == 'nested':
        splits = nested_splits(image_ids, image_cats, percents, seed,
                               allow_missing)
        tag_mode = ''
    elif split_mode == 'detreg':
        splits = detreg_splits(image_ids, image_cats, percents, seed,
                               detreg_order)
        tag_mode = '_detreg'
    else:
        raise ValueError("make_mini_coco: split_mode must be 'nested' or "
                         f"'detreg', got {split_mode!r}")

    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(ann_file))[0]
    images_by_id = {img['id']: img for img in coco['images']}
    cat_names = {
        c['id']: c.get('name', str(c['id']))
        for c in coco['categories']
    }
    summary = dict(
        source=osp.abspath(ann_file),
        seed=seed,
        split_mode=split_mode,
        num_images=len(image_ids),
        splits={})
    for p, split in splits.items():
        keep = sorted(split['image_ids'])
        anns = [a for i in keep for a in anns_by_img.get(i, ())]
        info = dict(coco.get('info') or {})
        info['mini_coco'] = dict(
            percent=p,
            seed=seed,
            source=osp.basename(ann_file),
            num_images=len(keep),
            swaps=split['swaps'],
            split_mode=split_mode)
        sub = dict(coco)
        sub.update(
            info=info,
            images=[images_by_id[i] for i in keep],
            annotations=anns)
        tag = percent_tag(p)
        out_file = osp.join(out_dir,
                            f'{stem}_{tag}pct{tag_mode}_seed{seed}.json')
        atomic_write_json(out_file, sub)
        per_cat = Counter(a['category_id'] for a in anns)
        summary['splits'][tag] = dict(
            file=out_file,
            num_images=len(keep),
            num_instances=len(anns),
            instances_per_category={
                cat_names.get(c, str(c)): per_cat.get(c, 0)
                for c in sorted(cat_names)
            },
            missing_categories=[cat_names.get(c, c) for c in split['missing']],
            swaps=split['swaps'])
    summary_file = osp.join(out_dir,
                            f'{stem}_mini_summary{tag_mode}_seed{seed}.json')
    atomic_write_json(summary_file, summary)
    if verbose:
        print(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    """A Markdown table: one row per split, one column per category."""
    splits = summary['splits']
    if not splits:
        return ''
    cats = list(next(iter(splits.values()))['instances_per_category'])
    head = ['split', 'images', 'instances', 'swaps'] + cats
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for tag, s in splits.items():
        row = [
            f'{tag} %',
            str(s['num_images']),
            str(s['num_instances']),
            str(s['swaps'])
        ]
        row += [str(s['instances_per_category'][c]) for c in cats]
        lines.append('| ' + ' | '.join(row) + ' |')
    lines.append(f'(source {summary["source"]}: {summary["num_images"]} '
                 f'images, seed {summary["seed"]})')
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(
        description='Nested, seeded mini-COCO subsets (DETReg/ProSeCo '
        'protocol) that contain every category.')
    parser.add_argument('ann_file', help='COCO instances json')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--percent',
        nargs='+',
        type=float,
        default=[1, 5, 10],
        help='split sizes in percent of the images (default: 1 5 10)')
    parser.add_argument(
        '--seed',
        type=int,
        default=None,
        help='permutation seed (default: 0; 42, DETReg\'s, with '
        '--split-mode detreg)')
    parser.add_argument(
        '--split-mode',
        choices=['nested', 'detreg'],
        default='nested',
        help='nested: nested, category-covering splits (default); detreg: '
        'DETReg\'s independent default_rng(seed) draws')
    parser.add_argument(
        '--detreg-order',
        choices=['sorted', 'file'],
        default='sorted',
        help='detreg mode: draw over the sorted image ids (DETReg\'s COCO '
        'order, default) or the file\'s images order')
    parser.add_argument(
        '--allow-missing',
        action='store_true',
        help='warn instead of failing when a split misses a category')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        seed = args.seed
        if seed is None:
            seed = 42 if args.split_mode == 'detreg' else 0
        summary = make_mini_coco(
            args.ann_file,
            args.out_dir,
            args.percent,
            seed,
            args.allow_missing,
            split_mode=args.split_mode,
            detreg_order=args.detreg_order)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(e.args[0] if e.args else e, file=sys.stderr)
        return 1
    for tag, s in summary['splits'].items():
        if s['missing_categories']:
            print(
                f'WARNING: the {tag} % split misses categories '
                f'{s["missing_categories"]}',
                file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
