"""The hard toy set: layout, determinism, and that colour does not solve it."""
import filecmp
import json

import cv2
import numpy as np
import pytest

from mmregion.testing.toy_data import make_toy_coco
from mmregion.testing.toy_data_hard import (HARD_CATEGORIES, PATTERNS, SHAPES,
                                            make_hard_toy_coco)


def _load(root, name):
    with open(root / 'annotations' / f'instances_{name}.json') as f:
        return json.load(f)


def _box_mean_colours(root, split):
    """(N, 3) mean BGR colour inside every GT box and (N, ) 0-based labels."""
    coco = _load(root, split)
    files = {im['id']: im['file_name'] for im in coco['images']}
    cache, feats, labels = {}, [], []
    for a in coco['annotations']:
        if a['image_id'] not in cache:
            cache[a['image_id']] = cv2.imread(
                str(root / split / files[a['image_id']])).astype(np.float64)
        x, y, w, h = a['bbox']
        crop = cache[a['image_id']][int(y):int(np.ceil(y + h)),
                                    int(x):int(np.ceil(x + w))]
        feats.append(crop.reshape(-1, 3).mean(0))
        labels.append(a['category_id'] - 1)
    return np.array(feats), np.array(labels)


def _logistic_accuracy(xtr, ytr, xte, yte, num_classes, iters=500):
    """Val accuracy of a softmax regression (numpy, full-batch GD) on
    standardised features plus their squares (a quadratic boundary)."""

    def expand(x):
        z = (x - mu) / sd
        return np.concatenate([z, z * z, np.ones((len(z), 1))], 1)

    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    ftr, fte = expand(xtr), expand(xte)
    w = np.zeros((ftr.shape[1], num_classes))
    onehot = np.eye(num_classes)[ytr]
    for _ in range(iters):
        logits = ftr @ w
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w -= 0.5 * ftr.T @ (p - onehot) / len(ftr)
    return float(((fte @ w).argmax(1) == yte).mean())


def test_categories_need_shape_and_pattern():
    assert len(HARD_CATEGORIES) == 10
    names = [c['name'] for c in HARD_CATEGORIES]
    assert len(set(names)) == 10
    for part in SHAPES + PATTERNS:  # neither alone names a category
        assert sum(part in n.split('_') for n in names) == 2


def test_mean_colour_is_near_chance(tmp_path):
    """A classifier on the mean colour of the GT boxes: near chance (10 %)
    on the hard set, while the same classifier solves the default set."""
    hard = tmp_path / 'hard'
    make_hard_toy_coco(str(hard), num_train=120, num_val=60, seed=3)
    acc = _logistic_accuracy(*_box_mean_colours(hard, 'train'),
                             *_box_mean_colours(hard, 'val'), 10)
    assert acc < 0.2, acc

    easy = tmp_path / 'easy'
    make_toy_coco(str(easy), num_train=60, num_val=30, size=128, seed=3)
    acc_easy = _logistic_accuracy(*_box_mean_colours(easy, 'train'),
                                  *_box_mean_colours(easy, 'val'), 4)
    assert acc_easy > 0.6, acc_easy


def test_layout_and_labeled_split(tmp_path):
    root = tmp_path / 'hard'
    paths = make_hard_toy_coco(
        str(root), num_train=40, num_val=5, size=96, labeled_frac=0.1)
    train, val = _load(root, 'train'), _load(root, 'val')
    labeled = _load(root, 'train_labeled')
    assert paths['train_labeled_ann'].endswith('instances_train_labeled.json')
    assert len(train['images']) == 40 and len(val['images']) == 5
    assert len(labeled['images']) == 4
    ids = {im['id'] for im in labeled['images']}
    assert ids <= {im['id'] for im in train['images']}
    assert {a['id']
            for a in labeled['annotations']} == {
                a['id']
                for a in train['annotations'] if a['image_id'] in ids
            }
    assert {c['id'] for c in train['categories']} == set(range(1, 11))
    assert len(train['annotations']) >= 2 * 40
    for a in train['annotations']:
        x, y, w, h = a['bbox']
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= 96 and y + h <= 96 and a['segmentation']
    img = cv2.imread(str(root / 'train' / train['images'][0]['file_name']))
    assert img.shape == (96, 96, 3)


def _same_tree(a, b):
    files = sorted(str(p.relative_to(a)) for p in a.rglob('*') if p.is_file())
    if files != sorted(
            str(p.relative_to(b)) for p in b.rglob('*') if p.is_file()):
        return False
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    return not mismatch and not errors


def test_deterministic(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    for root, seed in ((a, 1), (b, 1), (c, 2)):
        make_hard_toy_coco(
            str(root), num_train=4, num_val=2, size=64, seed=seed)
    assert _same_tree(a, b)
    assert not _same_tree(a, c)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='labeled_frac'):
        make_hard_toy_coco(str(tmp_path), labeled_frac=0)
    with pytest.raises(ValueError, match='size'):
        make_hard_toy_coco(str(tmp_path), size=32)
