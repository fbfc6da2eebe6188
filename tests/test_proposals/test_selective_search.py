import cv2
import numpy as np
import pytest

from mmregion.proposals import selective_search, selective_search_raw


@pytest.fixture(scope='module')
def toy_img(toy_coco):
    return cv2.imread(str(toy_coco / 'train' / '000000.jpg'))


def test_boxes_valid_and_filtered(toy_img):
    h, w = toy_img.shape[:2]
    boxes = selective_search(toy_img, mode='single', topk=10, min_size=15)
    assert boxes.dtype == np.float32 and boxes.ndim == 2
    assert 0 < len(boxes) <= 10
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (np.sqrt(bw * bh) > 15).all()
    assert ((bw / bh > 1 / 3) & (bw / bh < 3)).all()


def test_deterministic(toy_img):
    a = selective_search_raw(toy_img, mode='single')
    b = selective_search_raw(toy_img, mode='single')
    np.testing.assert_array_equal(a, b)


def test_working_scale_maps_back(toy_img):
    big = cv2.resize(toy_img, (256, 256), interpolation=cv2.INTER_NEAREST)
    full = selective_search_raw(big, mode='single', max_side=None)
    small = selective_search_raw(big, mode='single', max_side=128)
    assert small[:, 2:].max() > 200  # mapped back to the 256-px image
    assert (small[:, 2] <= 256).all() and (small[:, 3] <= 256).all()
    # the 128-px search of the 2x image finds roughly its boxes, doubled
    ref = selective_search_raw(toy_img, mode='single')
    assert abs(len(small) - len(ref)) <= max(10, len(ref) // 5)
    assert len(full) > 0


def test_gray_input_and_errors(toy_img):
    gray = cv2.cvtColor(toy_img, cv2.COLOR_BGR2GRAY)
    assert len(selective_search(gray, mode='single')) > 0
    with pytest.raises(ValueError, match='unknown mode'):
        selective_search(toy_img, mode='slow')
    with pytest.raises(ValueError, match='uint8'):
        selective_search(toy_img.astype(np.float32), mode='single')
