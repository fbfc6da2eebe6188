"""View affines ``[sx, tx, sy, ty]``: the one home of their maths.

A view of an image is related to the original image by an axis-aligned
affine map (``docs/design.md`` sec. 2)::

    x' = sx * x + tx,    y' = sy * y + ty        (original -> view pixels)

``sx < 0`` after a horizontal flip. The transforms compose it
(:func:`compose_affine`, numpy), :class:`MultiViewRegions` maps boxes between
views (:func:`relative_affine`), and the models map boxes and points back to
the original image and into other views (:func:`affine_boxes`,
:func:`affine_points`, torch). Every function that maps coordinates works on
numpy arrays and torch tensors alike, in the dtype it is given (no casting),
and broadcasts ``affine[..., i]`` against the coordinates.
"""
from typing import Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

Array = Union[np.ndarray, Tensor]

__all__ = [
    'identity_affine', 'compose_affine', 'invert_affine', 'relative_affine',
    'map_xy', 'affine_points', 'affine_boxes'
]


def identity_affine() -> np.ndarray:
    """The affine of an untransformed image: ``[1, 0, 1, 0]`` float32."""
    return np.array([1., 0., 1., 0.], dtype=np.float32)


def compose_affine(first: Sequence[float],
                   then: Sequence[float]) -> np.ndarray:
    """The affine of ``first`` followed by ``then`` (in float64).

    Args:
        first (Sequence[float]): ``(4,)`` ``[sx, tx, sy, ty]`` so far.
        then (Sequence[float]): ``(4,)`` the map applied next.

    Returns:
        np.ndarray: ``(4,)`` float32 ``then o first``.
    """
    a = np.asarray(first, dtype=np.float64)
    sx, tx, sy, ty = np.asarray(then, dtype=np.float64)
    return np.array([sx * a[0], sx * a[1] + tx, sy * a[2], sy * a[3] + ty],
                    dtype=np.float32)


def invert_affine(affine: Sequence[float]) -> np.ndarray:
    """The inverse map (view -> original), float64 ``(4,)``."""
    sx, tx, sy, ty = np.asarray(affine, dtype=np.float64)
    return np.array([1. / sx, -tx / sx, 1. / sy, -ty / sy])


def relative_affine(src: Sequence[float], dst: Sequence[float]) -> np.ndarray:
    """The map from view ``src`` pixels to view ``dst`` pixels (float64).

    ``dst o src^-1``: ``r = s_dst / s_src`` and ``t = t_dst - r * t_src`` per
    axis.

    Args:
        src (Sequence[float]): ``(4,)`` affine of the source view.
        dst (Sequence[float]): ``(4,)`` affine of the destination view.

    Returns:
        np.ndarray: ``(4,)`` float64 ``[rx, tx, ry, ty]``.
    """
    s0x, t0x, s0y, t0y = np.asarray(src, np.float64)
    svx, tvx, svy, tvy = np.asarray(dst, np.float64)
    rx, ry = svx / s0x, svy / s0y
    return np.array([rx, tvx - rx * t0x, ry, tvy - ry * t0y])


def map_xy(x: Array,
           y: Array,
           affine: Array,
           inverse: bool = False) -> Tuple[Array, Array]:
    """Map coordinates through ``affine`` (or back with ``inverse``).

    Args:
        x (np.ndarray | Tensor): x coordinates.
        y (np.ndarray | Tensor): y coordinates, the shape of ``x``.
        affine (np.ndarray | Tensor): ``(..., 4)``; ``affine[..., i]``
            broadcasts against ``x``.
        inverse (bool): view -> original (``x = (x' - tx) / sx``) instead of
            original -> view (``x' = sx * x + tx``).

    Returns:
        tuple: the mapped ``(x, y)``.
    """
    sx, tx, sy, ty = (affine[..., i] for i in range(4))
    if inverse:
        return (x - tx) / sx, (y - ty) / sy
    return sx * x + tx, sy * y + ty


def affine_points(points: Array,
                  affine: Array,
                  inverse: bool = False) -> Array:
    """Map ``(..., 2)`` xy points (see :func:`map_xy`).

    Args:
        points (np.ndarray | Tensor): ``(..., 2)`` xy.
        affine (np.ndarray | Tensor): ``(..., 4)``, broadcast against
            ``points[..., 0]``.
        inverse (bool): map view -> original.

    Returns:
        np.ndarray | Tensor: ``(..., 2)`` mapped points.
    """
    xp = torch if isinstance(points, Tensor) else np
    return xp.stack(
        map_xy(points[..., 0], points[..., 1], affine, inverse), -1)


def affine_boxes(boxes: Array, affine: Array, inverse: bool = False) -> Array:
    """Map ``(..., 4)`` xyxy boxes; corners are re-ordered after a flip.

    Args:
        boxes (np.ndarray | Tensor): ``(..., 4)`` xyxy.
        affine (np.ndarray | Tensor): ``(..., 4)``, broadcast against
            ``boxes[..., 0]`` (e.g. ``(4,)`` for ``(N, 4)`` boxes, or
            ``(B, V, 1, 4)`` for ``(B, V, K, 4)``).
        inverse (bool): map view -> original.

    Returns:
        np.ndarray | Tensor: ``(..., 4)`` xyxy with ``x1 <= x2``,
        ``y1 <= y2``.
    """
    xp = torch if isinstance(boxes, Tensor) else np
    xa, ya = map_xy(boxes[..., 0], boxes[..., 1], affine, inverse)
    xb, yb = map_xy(boxes[..., 2], boxes[..., 3], affine, inverse)
    return xp.stack([
        xp.minimum(xa, xb),
        xp.minimum(ya, yb),
        xp.maximum(xa, xb),
        xp.maximum(ya, yb)
    ], -1)
