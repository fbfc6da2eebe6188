"""numpy xyxy box helpers of the data pipeline.

Boxes are ``(N, 4)`` ``xyxy`` in continuous pixel coordinates: an image of
width ``w`` spans ``[0, w]``. (Torch boxes use mmdet's
``mmdet.structures.bbox`` ops.)
"""
from typing import Sequence

import numpy as np

__all__ = ['clip_boxes', 'box_areas']


def clip_boxes(boxes: np.ndarray, img_shape: Sequence[int]) -> np.ndarray:
    """Clip xyxy boxes to an image.

    Args:
        boxes (np.ndarray): (N, 4) xyxy boxes (any array-like; empty is fine).
        img_shape (Sequence[int]): ``(h, w, ...)`` of the image.

    Returns:
        np.ndarray: (N, 4) float32 boxes inside ``[0, w] x [0, h]`` (a copy).
    """
    h, w = img_shape[:2]
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` areas of xyxy boxes (negative extents count as 0)."""
    w = (boxes[:, 2] - boxes[:, 0]).clip(min=0)
    h = (boxes[:, 3] - boxes[:, 1]).clip(min=0)
    return w * h
