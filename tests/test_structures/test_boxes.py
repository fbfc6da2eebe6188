"""mmregion.structures.boxes: numpy xyxy box helpers."""
import numpy as np

from mmregion.structures import box_areas, clip_boxes


def test_clip_and_areas():
    boxes = np.float32([[-5, -5, 10, 300], [10, 10, 20, 20], [5, 5, 2, 9]])
    clipped = clip_boxes(boxes, (100, 50))
    np.testing.assert_array_equal(clipped[0], [0, 0, 10, 100])
    assert boxes[0, 0] == -5  # a copy
    np.testing.assert_array_equal(box_areas(clipped), [1000, 100, 0])


def test_clip_boxes_takes_array_likes_and_gives_float32():
    b = clip_boxes([[-5, -5, 10, 300], [10, 10, 20, 20]], (100, 50, 3))
    assert b.dtype == np.float32 and b.shape == (2, 4)
    np.testing.assert_array_equal(b, [[0, 0, 10, 100], [10, 10, 20, 20]])
    assert clip_boxes(np.zeros((0, 4), np.int64), (8, 8)).shape == (0, 4)
