import copy

import numpy as np
import pytest

from mmregion.datasets.transforms import (LoadProposals, MultiViewRegions,
                                          RegionRandomFlip,
                                          RegionRandomResizedCrop)
from mmregion.structures import affine_boxes, box_areas, clip_boxes
from mmregion.utils import log_utils


def _loaded(helpers, boxes, h=90, w=120):
    store = helpers.FakeStore({'i.jpg': boxes})
    res = dict(
        img=helpers.coord_image(h, w),
        img_path='/d/i.jpg',
        proposal_key='i.jpg')
    return LoadProposals(store).transform(res)


def _inverse(boxes, affine):
    sx, tx, sy, ty = (float(a) for a in affine)
    return affine_boxes(boxes, np.float32([1 / sx, -tx / sx, 1 / sy,
                                           -ty / sy]))


def _clip(boxes, shape):
    return clip_boxes(boxes, shape)


def _inter_area(a, b):
    lt = np.maximum(a[:, :2], b[:, :2])
    rb = np.minimum(a[:, 2:], b[:, 2:])
    return np.prod((rb - lt).clip(min=0), axis=1)


def test_correspondence_property(helpers):
    """Over many seeds: boxes inside their views, one region per row.

    For each region id k: the original box mapped by view v's affine and
    clipped is view v's box; view 1's box mapped back to the image and into
    view 2 lies inside view 2's box; every kept region passes the kept-area
    tests in every view and every dropped one fails them in some view.
    """
    min_kept, min_area = 0.6, 20.
    view = [
        dict(
            type='RegionRandomResizedCrop',
            scale=(64, 48),
            crop_ratio_range=(0.1, 1.),
            min_kept_ratio=min_kept,
            min_area=min_area),
        dict(type='RegionRandomFlip', prob=0.5)
    ]
    mv = MultiViewRegions([view], num_views=2, min_regions=1, max_tries=3)
    n_kept = n_dropped = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        np.random.seed(seed)
        h, w = rng.integers(40, 160, 2)
        res = _loaded(helpers, helpers.random_boxes(rng, 12, h, w), h, w)
        orig = res['proposals'].copy()
        out = mv.transform(res)
        boxes, ids, aff = out['boxes'], out['region_ids'], out['view_affine']
        K = len(ids)
        assert boxes.shape == (2, K, 4) and aff.shape == (2, 4)
        assert out['img_shape'] == [(48, 64), (48, 64)]
        assert [im.shape for im in out['img']] == [(48, 64, 3)] * 2
        assert 'proposals' not in out
        assert np.all(np.diff(ids) > 0)
        # inside the view, positive area
        assert np.all(boxes[..., 0] >= 0) and np.all(boxes[..., 2] <= 64)
        assert np.all(boxes[..., 1] >= 0) and np.all(boxes[..., 3] <= 48)
        assert np.all(boxes[..., 2] > boxes[..., 0])
        assert np.all(boxes[..., 3] > boxes[..., 1])
        for v in range(2):
            fwd = _clip(affine_boxes(orig[ids], aff[v]), (48, 64))
            np.testing.assert_allclose(boxes[v], fwd, atol=1e-3)
        # view 1 -> image -> view 2, up to clipping
        back = _clip(
            affine_boxes(_inverse(boxes[0], aff[0]), aff[1]), (48, 64))
        nonempty = box_areas(back) > 1e-3
        assert np.all(back[nonempty, :2] >= boxes[1, nonempty, :2] - 1e-3)
        assert np.all(back[nonempty, 2:] <= boxes[1, nonempty, 2:] + 1e-3)
        # kept-area rules, checked in the original image
        area = box_areas(orig)
        ok = np.ones(len(orig), bool)
        for v in range(2):
            view_rect = _inverse(
                np.array([[0, 0, 64, 48]], np.float32), aff[v])
            inter = _inter_area(orig, np.repeat(view_rect, len(orig), 0))
            ratio = inter / area
            view_area = inter * abs(aff[v, 0] * aff[v, 2])
            assert np.all(ratio[ids] >= min_kept - 1e-4)
            assert np.all(view_area[ids] >= min_area - 1e-2)
            ok &= (inter > 0) & (ratio >= min_kept + 1e-4) & \
                (view_area >= min_area + 1e-2)
        dropped = np.setdiff1d(np.arange(len(orig)), ids)
        assert not ok[dropped].any()
        n_kept += K
        n_dropped += len(dropped)
    assert n_kept > 100 and n_dropped > 100  # both paths exercised


def test_shared_geometry_gives_identical_boxes(helpers):
    np.random.seed(0)
    rng = np.random.default_rng(0)
    res = _loaded(helpers, helpers.random_boxes(rng, 10, 90, 120))
    res = RegionRandomResizedCrop(
        scale=64, crop_ratio_range=(0.3, 1.),
        min_kept_ratio=0.5).transform(res)
    res = RegionRandomFlip(prob=1.).transform(res)
    before = copy.deepcopy(res)
    calls = []

    def photometric(r):
        calls.append(1)
        r['img'] = 255 - r['img']
        return r

    out = MultiViewRegions([[photometric]], num_views=2,
                           min_regions=100).transform(res)
    assert len(calls) == 2  # no retry: it could not add regions
    np.testing.assert_array_equal(out['boxes'][0], out['boxes'][1])
    np.testing.assert_allclose(out['boxes'][0], before['proposals'])
    np.testing.assert_array_equal(out['region_ids'], before['region_ids'])
    np.testing.assert_array_equal(out['view_affine'][0], before['view_affine'])
    np.testing.assert_array_equal(out['img'][1], 255 - before['img'])
    assert MultiViewRegions.num_short == 1  # 100 regions were wanted


def _drop_ids(drop):

    def t(r):
        keep = ~np.isin(r['region_ids'], drop)
        r['proposals'] = r['proposals'][keep]
        r['region_ids'] = r['region_ids'][keep]
        return r

    return t


def test_views_dropping_different_regions_stay_aligned(helpers):
    boxes = np.array([[i, i, i + 10, i + 10] for i in range(6)], np.float32)
    res = _loaded(helpers, boxes)
    out = MultiViewRegions([[_drop_ids([1])], [_drop_ids([3, 4])]],
                           num_views=2).transform(res)
    np.testing.assert_array_equal(out['region_ids'], [0, 2, 5])
    np.testing.assert_allclose(out['boxes'][0], boxes[[0, 2, 5]])
    np.testing.assert_allclose(out['boxes'][1], boxes[[0, 2, 5]])


def test_retry_until_min_regions_and_count(helpers, monkeypatch):
    logged = []
    monkeypatch.setattr(log_utils, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    boxes = np.array([[i, i, i + 10, i + 10] for i in range(4)], np.float32)
    state = dict(calls=0)

    def flaky(r):  # drops every region in the first 2 view runs
        state['calls'] += 1
        return _drop_ids(np.arange(4) if state['calls'] <= 2 else [])(r)

    out = MultiViewRegions([[flaky]],
                           min_regions=2).transform(_loaded(helpers, boxes))
    assert state['calls'] == 4  # 2 tries of 2 views
    assert len(out['region_ids']) == 4
    assert MultiViewRegions.num_short == 0 and logged == []

    # never enough: max_tries tries, the best one is used, counted, logged
    state['calls'] = -100
    out = MultiViewRegions([[flaky]], min_regions=2,
                           max_tries=3).transform(_loaded(helpers, boxes))
    assert state['calls'] == -94
    assert out['boxes'].shape == (2, 0, 4)
    assert out['region_ids'].shape == (0, )
    assert MultiViewRegions.num_short == 1 and 'i.jpg' in logged[0]


def test_zero_regions_no_retry(helpers):
    res = _loaded(helpers, [[1, 1, 5, 5]])
    res['proposals'] = np.zeros((0, 4), np.float32)
    res['region_ids'] = np.zeros((0, ), np.int64)
    calls = []
    out = MultiViewRegions([[lambda r: calls.append(1) or r]]).transform(res)
    assert len(calls) == 2
    assert out['boxes'].shape == (2, 0, 4) and out['boxes'].dtype == np.float32
    assert out['region_ids'].dtype == np.int64
    assert MultiViewRegions.num_short == 1


def test_max_regions_is_a_seeded_ordered_subset(helpers):
    boxes = np.array([[i, i, i + 10, i + 10] for i in range(20)], np.float32)
    mv = MultiViewRegions([[]], max_regions=5)
    np.random.seed(7)
    a = mv.transform(_loaded(helpers, boxes))
    np.random.seed(7)
    b = mv.transform(_loaded(helpers, boxes))
    assert a['boxes'].shape == (2, 5, 4)
    np.testing.assert_array_equal(a['region_ids'], b['region_ids'])
    assert np.all(np.diff(a['region_ids']) > 0)
    np.testing.assert_allclose(a['boxes'][0], boxes[a['region_ids']])


def test_pipeline_forms_and_errors(helpers):
    crop = dict(type='RegionRandomResizedCrop', scale=32)
    flat = MultiViewRegions([crop], num_views=3)
    nested = MultiViewRegions([[crop]], num_views=3)
    per_view = MultiViewRegions([[crop], [crop,
                                          dict(type='RegionRandomFlip')]])
    assert len(flat.pipelines) == len(nested.pipelines) == 3
    assert flat.pipelines[0] is flat.pipelines[2]
    assert per_view.pipelines[0] is not per_view.pipelines[1]
    out = flat.transform(_loaded(helpers, [[0, 0, 120, 90]]))
    assert out['boxes'].shape == (3, 1, 4) and len(out['img']) == 3
    with pytest.raises(ValueError, match='num_views=3'):
        MultiViewRegions([[crop], [crop]], num_views=3)
    with pytest.raises(KeyError, match='LoadProposals'):
        flat.transform(dict(img=np.zeros((8, 8, 3), np.uint8)))

    def lose_ids(r):
        del r['region_ids']
        return r

    with pytest.raises(KeyError, match='lost "region_ids"'):
        MultiViewRegions([[lose_ids]
                          ]).transform(_loaded(helpers, [[0, 0, 5, 5]]))
