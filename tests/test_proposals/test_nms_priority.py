"""CCOP's random-score NMS, the presets and full resolution (issue 11.6/11)."""
import runpy

import cv2
import numpy as np
import pytest

from mmregion.proposals import (filter_boxes, generate_proposals,
                                load_proposal_store, selective_search,
                                selective_search_raw)
from mmregion.proposals.filters import random_priority

REPO_ROOT = __file__.rsplit('/tests/', 1)[0]


def test_filter_boxes_follows_scores():
    boxes = np.array(
        [[0, 0, 30, 30], [1, 1, 31, 31], [50, 50, 80, 80], [0, 50, 30, 80]],
        np.float32)
    # input order: box 0 suppresses box 1
    np.testing.assert_array_equal(
        filter_boxes(boxes, (100, 100), min_size=0, return_inds=True)[1],
        [0, 2, 3])
    # scores: box 1 first suppresses box 0; output in score order
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    _, inds = filter_boxes(
        boxes, (100, 100), min_size=0, scores=scores, return_inds=True)
    np.testing.assert_array_equal(inds, [1, 3, 2])
    _, inds = filter_boxes(
        boxes, (100, 100), min_size=0, scores=scores, topk=2, return_inds=True)
    np.testing.assert_array_equal(inds, [1, 3])
    with pytest.raises(ValueError, match='scores'):
        filter_boxes(boxes, (100, 100), scores=scores[:2])


def test_random_priority_is_ccops_distribution():
    s = random_priority(10000, seed=3)
    assert s.min() >= 0.01 and s.max() < 1 and abs(s.mean() - 0.505) < 0.01
    np.testing.assert_array_equal(s, random_priority(10000, seed=3))


@pytest.fixture(scope='module')
def toy_img(toy_coco):
    return cv2.imread(str(toy_coco / 'train' / '000000.jpg'))


def test_random_priority_is_a_random_subset(toy_img):
    kw = dict(mode='single', min_size=5, topk=None, nms_iou=None)
    opencv = selective_search(toy_img, nms_priority='opencv', **kw)
    a = selective_search(toy_img, priority_seed=1, **kw)
    b = selective_search(toy_img, priority_seed=2, **kw)
    # same set of boxes (no NMS, no top-k), other orders, seeded
    assert len(a) == len(opencv) > 5
    assert sorted(map(tuple, a)) == sorted(map(tuple, opencv))
    assert not np.array_equal(a, opencv) and not np.array_equal(a, b)
    np.testing.assert_array_equal(
        a, selective_search(toy_img, priority_seed=1, **kw))
    with pytest.raises(ValueError, match='nms_priority'):
        selective_search(toy_img, nms_priority='best')


def test_squash_and_full_resolution(toy_img):
    big = cv2.resize(toy_img, (256, 192))
    sq = selective_search_raw(big, mode='single', squash_size=64)
    assert sq[:, 2].max() > 200 and sq[:, 3].max() > 150  # scaled back
    assert (sq[:, 2] <= 256).all() and (sq[:, 3] <= 192).all()
    full = selective_search_raw(big, mode='single', max_side=None)
    small = selective_search_raw(big, mode='single', max_side=64)
    assert len(full) > len(small)
    rgb = selective_search_raw(big, mode='single', swap_rb=True)
    assert rgb.shape[1] == 4


def test_random_order_does_not_depend_on_workers(toy_coco, tmp_path):
    src = str(toy_coco / 'train')
    kw = dict(mode='single', shard_size=3, progress=False)
    generate_proposals(src, str(tmp_path / 'w1'), workers=1, **kw)
    generate_proposals(src, str(tmp_path / 'w2'), workers=2, **kw)
    generate_proposals(src, str(tmp_path / 'cv'), nms_priority='opencv', **kw)
    a, b, c = (
        load_proposal_store(str(tmp_path / n)) for n in ('w1', 'w2', 'cv'))
    assert a.meta['params']['nms_priority'] == 'random'
    assert c.meta['params']['nms_priority'] == 'opencv'
    differ = 0
    for k in a.keys():
        np.testing.assert_array_equal(a.get(k), b.get(k))
        differ += not np.array_equal(a.get(k), c.get(k))
    assert differ > 0


def test_presets_and_explicit_flags(toy_coco, tmp_path):
    tool = runpy.run_path(f'{REPO_ROOT}/tools/generate_proposals.py')
    args = tool['parse_args'](['src', 'out', '--preset', 'ccop'])
    assert (args.max_side, args.nms_priority, args.topk, args.nms_iou,
            args.min_size) == (None, 'random', 50, 0.5, 20.)
    args = tool['parse_args'](['src', 'out', '--max-side', '0'])
    assert args.max_side is None and args.nms_priority == 'random'
    args = tool['parse_args'](
        ['src', 'out', '--preset', 'detreg', '--topk', '30'])
    assert (args.squash_size, args.swap_rb, args.nms_iou, args.nms_priority,
            args.min_aspect, args.max_aspect, args.min_size,
            args.topk) == (128, True, None, 'opencv', None, None, 0., 30)
    out = tmp_path / 'detreg'
    tool['main']([
        str(toy_coco / 'val'),
        str(out), '--preset', 'detreg', '--mode', 'single', '--no-progress'
    ])
    store = load_proposal_store(str(out))
    p = store.meta['params']
    assert (p['squash_size'], p['swap_rb'], p['filters']['nms_iou'],
            p['filters']['topk']) == (128, True, None, 200)
    boxes = store.get('000000.jpg')
    assert 0 < len(boxes) <= 200
    # no filter: boxes smaller than CCOP's 20 px survive
    assert (np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], 1)) <= 20).any()
