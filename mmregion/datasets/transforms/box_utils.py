"""Region updates shared by the region transforms (numpy only).

Boxes are ``(N, 4)`` float32 ``xyxy`` in continuous pixel coordinates; the
view-affine maths (``[sx, tx, sy, ty]``, ``x' = sx * x + tx``) and the box
helpers live in :mod:`mmregion.structures`.
"""
import logging

import numpy as np
from mmengine.logging import print_log

from mmregion.structures import (affine_boxes, clip_boxes, compose_affine,
                                 identity_affine)

__all__ = ['is_power_of_two', 'log_count', 'identity_affine', 'update_regions']


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` (> 0) is a power of 2: the counts at which we log."""
    return n > 0 and (n & (n - 1)) == 0


def log_count(count: int, msg: str) -> None:
    """Log ``msg`` when ``count`` is 1, 2, 4, 8... (never silent, not spam)."""
    if is_power_of_two(count):
        print_log(msg, logger='current', level=logging.WARNING)


def update_regions(results: dict,
                   sx: float,
                   tx: float,
                   sy: float,
                   ty: float,
                   keep: np.ndarray = None) -> None:
    """Map ``proposals`` and ``view_affine`` of ``results`` in place.

    Boxes are mapped, clipped to ``results['img_shape']`` (the new view) and
    dropped, together with their ``region_ids``, when ``keep`` is False or
    when they have no area left inside the view.

    Args:
        results (dict): Pipeline results; missing region keys are skipped.
        sx, tx, sy, ty (float): The map from the previous to the new view.
        keep (np.ndarray, optional): (N,) bool, boxes to keep before the
            view test.
    """
    if 'view_affine' in results:
        results['view_affine'] = compose_affine(results['view_affine'],
                                                (sx, tx, sy, ty))
    if 'proposals' not in results:
        return
    boxes = np.asarray(results['proposals'], dtype=np.float32).reshape(-1, 4)
    affine = np.array([sx, tx, sy, ty], dtype=np.float32)
    boxes = clip_boxes(affine_boxes(boxes, affine), results['img_shape'])
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if keep is not None:
        valid &= keep
    results['proposals'] = boxes[valid]
    if 'region_ids' in results:
        results['region_ids'] = np.asarray(
            results['region_ids'], dtype=np.int64)[valid]
