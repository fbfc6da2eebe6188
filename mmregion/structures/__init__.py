"""Geometry shared by the data pipeline and the models (no registries)."""
from .boxes import box_areas, clip_boxes
from .view_affine import (affine_boxes, affine_points, compose_affine,
                          identity_affine, invert_affine, map_xy,
                          relative_affine)

__all__ = [
    'box_areas', 'clip_boxes', 'affine_boxes', 'affine_points',
    'compose_affine', 'identity_affine', 'invert_affine', 'map_xy',
    'relative_affine'
]
