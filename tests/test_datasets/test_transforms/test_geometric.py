import numpy as np
import pytest

from mmregion.datasets.transforms import (RegionRandomFlip,
                                          RegionRandomResizedCrop,
                                          RegionResize)
from mmregion.structures import affine_boxes


def _results(boxes, h=100, w=200, img=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return dict(
        img=np.zeros((h, w, 3), np.uint8) if img is None else img,
        img_shape=(h, w),
        proposals=boxes,
        region_ids=np.arange(len(boxes), dtype=np.int64),
        view_affine=np.array([1, 0, 1, 0], np.float32))


def _check_affine(out, orig_boxes):
    """Boxes of ``out`` = the originals mapped by its view_affine, clipped."""
    h, w = out['img_shape']
    mapped = affine_boxes(orig_boxes[out['region_ids']], out['view_affine'])
    mapped[:, 0::2] = mapped[:, 0::2].clip(0, w)
    mapped[:, 1::2] = mapped[:, 1::2].clip(0, h)
    np.testing.assert_allclose(out['proposals'], mapped, atol=1e-3)


def test_resize_scales_boxes_and_affine():
    boxes = np.array([[10, 20, 50, 60], [0, 0, 200, 100]], np.float32)
    out = RegionResize(scale=(100, 25)).transform(_results(boxes))
    assert out['img'].shape == (25, 100, 3)
    assert out['img_shape'] == (25, 100)
    np.testing.assert_allclose(out['proposals'],
                               [[5, 5, 25, 15], [0, 0, 100, 25]])
    np.testing.assert_allclose(out['view_affine'], [0.5, 0, 0.25, 0])

    out = RegionResize(
        scale=(400, 400), keep_ratio=True).transform(_results(boxes))
    assert out['img_shape'] == (200, 400)
    np.testing.assert_allclose(out['proposals'][0], [20, 40, 100, 120])


def test_flip_mirrors_boxes_and_affine(monkeypatch):
    boxes = np.array([[10, 20, 50, 60]], np.float32)
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = 255
    out = RegionRandomFlip(prob=1.).transform(_results(boxes, img=img))
    np.testing.assert_allclose(out['proposals'], [[150, 20, 190, 60]])
    np.testing.assert_allclose(out['view_affine'], [-1, 200, 1, 0])
    assert out['img'][:, 100:].min() == 255 and out['img'][:, :100].max() == 0
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    # flipping twice is the identity
    out = RegionRandomFlip(prob=1.).transform(out)
    np.testing.assert_allclose(out['proposals'], boxes)
    np.testing.assert_allclose(out['view_affine'], [1, 0, 1, 0])
    out = RegionRandomFlip(prob=0.).transform(_results(boxes))
    np.testing.assert_allclose(out['proposals'], boxes)
    assert not out['flip']


def test_crop_kept_ratio_and_min_area(monkeypatch):
    boxes = np.array(
        [
            [20, 20, 60, 60],  # fully inside the crop
            [80, 20, 120, 60],  # half inside (crop ends at x=100)
            [90, 20, 130, 60],  # a quarter inside
            [150, 20, 190, 60],  # outside
            [30, 70, 33, 73],  # inside but 3x3 px -> 6x6 = 36 px^2 in the view
        ],
        np.float32)
    t = RegionRandomResizedCrop(scale=200, min_kept_ratio=0.4, min_area=50)
    monkeypatch.setattr(t, 'get_params', lambda h, w: (0, 0, 100, 100))
    out = t.transform(_results(boxes))
    assert out['img'].shape == (200, 200, 3)
    np.testing.assert_array_equal(out['region_ids'], [0, 1])
    np.testing.assert_allclose(out['proposals'],
                               [[40, 40, 120, 120], [160, 40, 200, 120]])
    np.testing.assert_allclose(out['view_affine'], [2, 0, 2, 0])

    t.min_kept_ratio, t.min_area = 0.6, 0.
    out = t.transform(_results(boxes))
    np.testing.assert_array_equal(out['region_ids'], [0, 4])
    t.min_kept_ratio = 0.
    out = t.transform(_results(boxes))
    np.testing.assert_array_equal(out['region_ids'], [0, 1, 2, 4])
    _check_affine(out, boxes)


def test_crop_params_are_valid():
    np.random.seed(0)
    t = RegionRandomResizedCrop(
        scale=(32, 24), crop_ratio_range=(0.1, 1.), max_attempts=10)
    for h, w in [(50, 80), (80, 50), (10, 200), (31, 31)]:
        for _ in range(50):
            x0, y0, cw, ch = t.get_params(h, w)
            assert 0 <= x0 and x0 + cw <= w and cw > 0
            assert 0 <= y0 and y0 + ch <= h and ch > 0
    out = t.transform(dict(img=np.zeros((50, 80, 3), np.uint8)))
    assert out['img'].shape == (24, 32, 3) and out['img_shape'] == (24, 32)
    assert 'proposals' not in out


def test_crop_image_matches_affine(helpers):
    """The pixels of a view come from where ``view_affine`` says."""
    np.random.seed(3)
    h, w = 90, 120
    img = helpers.coord_image(h, w)
    crop = RegionRandomResizedCrop(scale=48, crop_ratio_range=(0.2, 1.))
    flip = RegionRandomFlip(prob=0.5)
    for _ in range(20):
        out = flip.transform(
            crop.transform(_results([[0, 0, w, h]], h=h, w=w, img=img.copy())))
        sx, tx, sy, ty = out['view_affine']
        vh, vw = out['img_shape']
        v, u = np.mgrid[2:vh - 2, 2:vw - 2]
        # view pixel centres -> original continuous coords -> pixel index
        x = (u + 0.5 - tx) / sx - 0.5
        y = (v + 0.5 - ty) / sy - 0.5
        got = out['img'][2:vh - 2, 2:vw - 2].astype(np.float64)
        assert np.abs(got[..., 0] - x).max() < 1.5
        assert np.abs(got[..., 1] - y).max() < 1.5


def test_bad_arguments():
    with pytest.raises(ValueError, match='crop_ratio_range'):
        RegionRandomResizedCrop(crop_ratio_range=(0.5, 1.5))
    with pytest.raises(ValueError, match='scale'):
        RegionResize(scale=(1, 2, 3))
    with pytest.raises(ValueError, match='prob'):
        RegionRandomFlip(prob=2)
