"""numpy xyxy box helpers of the data pipeline.

Boxes are ``(N, 4)`` ``xyxy`` in continuous pixel coordinates: an image of
width ``w`` spans ``[0, w]``. (Torch boxes use mmdet's
``mmdet.structures.bbox`` ops.)
"""
from typing import Sequence

import numpy as np

__all__ = ['clip_boxes', 'box_areas']


def clip_boxes(boxes: np.ndarray, img_shape: Sequence[int]) -> np.ndarray:
    """Clip ``(N, 4)`` xyxy boxes to an image of shape ``(h, w)`` (a copy)."""
    h, w = img_shape[:2]
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` areas of xyxy boxes (negative extents count as 0)."""
    w = (boxes[:, 2] - boxes[:, 0]).clip(min=0)
    h = (boxes[:, 3] - boxes[:, 1]).clip(min=0)
    return w * h
