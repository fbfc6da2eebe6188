"""Data of the transfer benchmark: the data set, its dev/test split, and
the boxes each pre-training run reads (selective search, random, ground
truth).

Layout under the data root (COCO, as ``make_hard_toy_coco`` writes it)::

    train/, val/                        images
    annotations/instances_train.json    unlabelled pre-training images
    annotations/instances_train_labeled.json   labelled subset (probe and
                                        detector training)
    annotations/instances_dev.json      val images used for any tuning
    annotations/instances_test.json     the other val images (reported)
"""
import json
import os
import os.path as osp
import sys
from typing import Dict, List

import numpy as np

from mmregion.utils.atomic_io import atomic_write_json

ANN = dict(
    unlabeled='annotations/instances_train.json',
    labeled='annotations/instances_train_labeled.json',
    dev='annotations/instances_dev.json',
    test='annotations/instances_test.json')
IMG = dict(unlabeled='train/', labeled='train/', dev='val/', test='val/')


def split_dev_test(val_ann: str, dev_ann: str, test_ann: str, num_dev: int,
                   seed: int) -> Dict[str, int]:
    """Split a COCO json by image into a dev and a test json (seeded).

    Returns:
        dict: Images and boxes of each split.
    """
    with open(val_ann) as f:
        coco = json.load(f)
    images = coco['images']
    if not 0 < num_dev < len(images):
        raise ValueError(f'{val_ann}: num_dev must be in [1, '
                         f'{len(images) - 1}] (it has {len(images)} images), '
                         f'got {num_dev}: change data.num_dev')
    order = np.random.default_rng([seed, 11]).permutation(len(images))
    dev_ids = {images[int(i)]['id'] for i in order[:num_dev]}
    out = {}
    for path, name, keep in ((dev_ann, 'dev', lambda i: i in dev_ids),
                             (test_ann, 'test', lambda i: i not in dev_ids)):
        sub = dict(
            coco,
            images=[im for im in images if keep(im['id'])],
            annotations=[
                a for a in coco['annotations'] if keep(a['image_id'])
            ])
        atomic_write_json(path, sub)
        out[f'{name}_images'] = len(sub['images'])
        out[f'{name}_boxes'] = len(sub['annotations'])
    return out


def make_data(cfg: dict, root: str) -> dict:
    """Write the protocol's data set under ``root`` (``cfg`` = the
    protocol's ``data`` dict) and split its val images into dev and test.

    Returns:
        dict: ``root`` and the image / box counts of every split.
    """
    if cfg['type'] != 'hard_toy':
        raise ValueError(f'data.type={cfg["type"]!r}: only \'hard_toy\' is '
                         'generated; for another data set set data.root to '
                         'an existing COCO-layout directory (see the COCO '
                         'protocol)')
    from mmregion.testing.toy_data_hard import make_hard_toy_coco
    paths = make_hard_toy_coco(
        root,
        num_train=cfg['num_unlabeled'],
        num_val=cfg['num_val'],
        size=cfg['image_size'],
        seed=cfg['seed'],
        labeled_frac=cfg['labeled_frac'])
    counts = split_dev_test(paths['val_ann'], osp.join(root, ANN['dev']),
                            osp.join(root, ANN['test']), cfg['num_dev'],
                            cfg['seed'])
    with open(paths['train_labeled_ann']) as f:
        lab = json.load(f)
    counts.update(
        labeled_images=len(lab['images']),
        labeled_boxes=len(lab['annotations']),
        unlabeled_images=cfg['num_unlabeled'])
    return dict(root=root, **counts)


def check_data(root: str) -> dict:
    """Check an existing data root has every file of the layout."""
    missing = [
        p for p in list(ANN.values()) + list(set(IMG.values()))
        if not osp.exists(osp.join(root, p))
    ]
    if missing:
        raise FileNotFoundError(
            f'data root {root} lacks {missing}: see the layout in '
            'mmregion/apis/transfer/data.py (the dev/test split can be made '
            'with split_dev_test)')
    return dict(root=root)


def split_paths(root: str) -> Dict[str, tuple]:
    """``{split: (COCO json, image dir)}`` of every split under ``root``."""
    return {k: (osp.join(root, ANN[k]), osp.join(root, IMG[k])) for k in ANN}


def categories(root: str) -> List[str]:
    """Category names of the data set, by ascending id."""
    with open(osp.join(root, ANN['test'])) as f:
        cats = json.load(f)['categories']
    return [c['name'] for c in sorted(cats, key=lambda c: c['id'])]


def unlabeled_images(root: str, num: int) -> List[str]:
    """The first ``num`` unlabelled images (by file name): the images every
    backbone's BN statistics are recomputed on."""
    with open(osp.join(root, ANN['unlabeled'])) as f:
        names = sorted(im['file_name'] for im in json.load(f)['images'])
    return [osp.join(root, IMG['unlabeled'], n) for n in names[:num]]


def write_gt_proposals(root: str, out: str) -> dict:
    """The ground-truth boxes of the unlabelled images as a proposal store
    (the oracle: pre-training with perfect regions)."""
    from mmregion.proposals.writer import ProposalWriter
    with open(osp.join(root, ANN['unlabeled'])) as f:
        coco = json.load(f)
    boxes: Dict[int, list] = {im['id']: [] for im in coco['images']}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        if w >= 1 and h >= 1 and a['image_id'] in boxes:
            boxes[a['image_id']].append([x, y, x + w, y + h])
    by_key = {
        im['file_name']: np.array(boxes[im['id']], np.float32).reshape(-1, 4)
        for im in coco['images']
    }
    writer = ProposalWriter(
        out, list(by_key), params=dict(method='ground_truth'))
    for i in range(writer.num_shards):
        writer.write_shard(i, {k: by_key[k] for k in writer.shard_keys(i)})
    writer.finalize(dict(boxes=int(sum(len(b) for b in by_key.values()))))
    return dict(store=out)


def generate_proposals(root: str, out: str, kind: str, min_size: float,
                       workers: int, log: str) -> dict:
    """Selective-search (``ss``) or random boxes of the unlabelled images
    through ``tools/generate_proposals.py`` (``gt``: the ground truth)."""
    if kind == 'gt':
        return write_gt_proposals(root, out)
    from .runner import REPO, run_command
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools', 'generate_proposals.py'),
        osp.join(root, ANN['unlabeled']), out, '--img-root',
        osp.join(root, IMG['unlabeled']), '--workers',
        str(workers), '--min-size',
        str(min_size), '--no-progress'
    ]
    if kind == 'random':
        cmd += ['--method', 'random']
    elif kind != 'ss':
        raise ValueError(f'boxes={kind!r}: choose ss, random or gt')
    os.makedirs(osp.dirname(log), exist_ok=True)
    run_command(cmd, log)
    return dict(store=out)
