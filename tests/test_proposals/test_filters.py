import numpy as np
import pytest

from mmregion.proposals import (box_iou, filter_boxes, grid_proposals,
                                nms_in_order, random_proposals)


def _no_filters(**kw):
    cfg = dict(
        min_size=0.,
        min_aspect=0.,
        max_aspect=np.inf,
        min_rel_area=0.,
        max_rel_area=1.,
        nms_iou=None,
        topk=None)
    cfg.update(kw)
    return cfg


def test_aspect_filter_is_strict():
    boxes = np.array(
        [[0, 0, 30, 90], [0, 0, 31, 90], [0, 0, 90, 30], [0, 0, 89, 30]],
        np.float32)
    out, inds = filter_boxes(
        boxes, (100, 100),
        return_inds=True,
        **_no_filters(min_aspect=1 / 3, max_aspect=3))
    np.testing.assert_array_equal(inds, [1, 3])
    np.testing.assert_array_equal(out, boxes[[1, 3]])


def test_min_size_and_rel_area():
    boxes = np.array(
        [[0, 0, 20, 20], [0, 0, 21, 21], [0, 0, 100, 100], [0, 0, 0, 50]],
        np.float32)
    _, inds = filter_boxes(
        boxes, (100, 100), return_inds=True, **_no_filters(min_size=20))
    np.testing.assert_array_equal(inds, [1, 2])  # zero width always drops
    _, inds = filter_boxes(
        boxes, (100, 100),
        return_inds=True,
        **_no_filters(min_rel_area=0.05, max_rel_area=0.9))
    np.testing.assert_array_equal(inds, [])
    _, inds = filter_boxes(
        boxes, (100, 100),
        return_inds=True,
        **_no_filters(min_rel_area=0.041, max_rel_area=0.9))
    np.testing.assert_array_equal(inds, [1])


def test_nms_keeps_input_order_and_topk():
    boxes = np.array([[0, 0, 50, 50], [1, 1, 50, 50], [60, 60, 90, 90],
                      [0, 0, 49, 51], [61, 61, 90, 90], [10, 60, 40, 95]],
                     np.float32)
    np.testing.assert_array_equal(nms_in_order(boxes, 0.5), [0, 2, 5])
    np.testing.assert_array_equal(nms_in_order(boxes, 0.5, max_keep=2), [0, 2])
    out, inds = filter_boxes(
        boxes, (100, 100),
        return_inds=True,
        **_no_filters(nms_iou=0.5, topk=2))
    np.testing.assert_array_equal(inds, [0, 2])
    # kept boxes overlap at most nms_iou
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 80, (300, 2))
    wh = rng.uniform(5, 40, (300, 2))
    many = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    keep = nms_in_order(many, 0.3)
    iou = box_iou(many[keep], many[keep])
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.3 + 1e-6
    # and every removed box overlaps an earlier kept box
    removed = np.setdiff1d(np.arange(300), keep)
    iou_r = box_iou(many[removed], many[keep])
    earlier = keep[None, :] < removed[:, None]
    assert ((iou_r > 0.3) & earlier).any(1).all()


def test_filter_empty_input():
    out = filter_boxes(np.zeros((0, 4)), (10, 10))
    assert out.shape == (0, 4) and out.dtype == np.float32


def test_grid_proposals():
    g = grid_proposals((60, 80), (2, 3))
    assert g.shape == (4 + 9, 4)
    np.testing.assert_allclose(g[0], [0, 0, 40, 30])
    np.testing.assert_allclose(g[3], [40, 30, 80, 60])
    # each grid tiles the image exactly
    area = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    np.testing.assert_allclose([area[:4].sum(), area[4:].sum()],
                               4800,
                               rtol=1e-5)
    with pytest.raises(ValueError):
        grid_proposals((10, 10), (0, ))


def test_random_proposals():
    a = random_proposals((50, 70), num=100, seed=3)
    b = random_proposals((50, 70), num=100, seed=3)
    c = random_proposals((50, 70), num=100, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (100, 4) and a.dtype == np.float32
    assert (a[:, 0] >= 0).all() and (a[:, 2] <= 70 + 1e-4).all()
    assert (a[:, 1] >= 0).all() and (a[:, 3] <= 50 + 1e-4).all()
    assert ((a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])).all()
