"""Geometry shared by the data pipeline and the models (no registries)."""
from .boxes import box_areas, clip_boxes  # noqa
from .view_affine import compose_affine  # noqa
from .view_affine import (affine_boxes, affine_points, identity_affine,
                          invert_affine, map_xy, relative_affine)
