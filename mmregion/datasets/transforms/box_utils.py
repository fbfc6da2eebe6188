"""Box and affine helpers shared by the region transforms (numpy only).

Boxes are ``(N, 4)`` float32 ``xyxy`` in continuous pixel coordinates: an
image of width ``w`` spans ``[0, w]``. A view affine is ``[sx, tx, sy, ty]``
and maps original-image coordinates to view coordinates
(``x' = sx * x + tx``, ``y' = sy * y + ty``; ``sx < 0`` after a flip).
"""
import logging
from typing import Tuple

import numpy as np
from mmengine.logging import print_log


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` (> 0) is a power of 2: the counts at which we log."""
    return n > 0 and (n & (n - 1)) == 0


def log_count(count: int, msg: str) -> None:
    """Log ``msg`` when ``count`` is 1, 2, 4, 8... (never silent, not spam)."""
    if is_power_of_two(count):
        print_log(msg, logger='current', level=logging.WARNING)


def identity_affine() -> np.ndarray:
    """The affine of an untransformed image: ``[1, 0, 1, 0]`` float32."""
    return np.array([1., 0., 1., 0.], dtype=np.float32)


def map_boxes(boxes: np.ndarray, sx: float, tx: float, sy: float,
              ty: float) -> np.ndarray:
    """Apply ``x' = sx*x + tx``, ``y' = sy*y + ty`` to xyxy boxes.

    Negative scales (flips) swap the corners so that ``x1 <= x2`` holds.

    Args:
        boxes (np.ndarray): (N, 4) xyxy.
        sx, tx, sy, ty (float): The affine.

    Returns:
        np.ndarray: (N, 4) float32 xyxy.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    xs = boxes[:, 0::2] * np.float32(sx) + np.float32(tx)
    ys = boxes[:, 1::2] * np.float32(sy) + np.float32(ty)
    out = np.stack(
        [xs.min(axis=1),
         ys.min(axis=1),
         xs.max(axis=1),
         ys.max(axis=1)],
        axis=1)
    return out.astype(np.float32)


def compose_affine(affine: np.ndarray, sx: float, tx: float, sy: float,
                   ty: float) -> np.ndarray:
    """Follow ``affine`` by the map ``x' = sx*x + tx``, ``y' = sy*y + ty``.

    Args:
        affine (np.ndarray): (4,) ``[sx, tx, sy, ty]`` so far.

    Returns:
        np.ndarray: (4,) float32, the composed affine.
    """
    a = np.asarray(affine, dtype=np.float64)
    return np.array([sx * a[0], sx * a[1] + tx, sy * a[2], sy * a[3] + ty],
                    dtype=np.float32)


def clip_boxes(boxes: np.ndarray, img_shape: Tuple[int, int]) -> np.ndarray:
    """Clip xyxy boxes to an image of shape ``(h, w)``."""
    h, w = img_shape[:2]
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N,) areas of xyxy boxes (negative extents count as 0)."""
    w = (boxes[:, 2] - boxes[:, 0]).clip(min=0)
    h = (boxes[:, 3] - boxes[:, 1]).clip(min=0)
    return w * h


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
        results['view_affine'] = compose_affine(results['view_affine'], sx, tx,
                                                sy, ty)
    if 'proposals' not in results:
        return
    boxes = clip_boxes(
        map_boxes(results['proposals'], sx, tx, sy, ty), results['img_shape'])
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if keep is not None:
        valid &= keep
    results['proposals'] = boxes[valid]
    if 'region_ids' in results:
        results['region_ids'] = np.asarray(
            results['region_ids'], dtype=np.int64)[valid]
