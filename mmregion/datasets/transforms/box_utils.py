"""Region updates shared by the region transforms (numpy only).

Boxes are ``(N, 4)`` float32 ``xyxy`` in continuous pixel coordinates; the
view-affine maths (``[sx, tx, sy, ty]``, ``x' = sx * x + tx``) and the box
helpers live in :mod:`mmregion.structures`.
"""
import numpy as np

from mmregion.structures import affine_boxes, clip_boxes, compose_affine

__all__ = ['update_regions']


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
