"""Geometric transforms that carry region boxes (``docs/design.md`` sec. 2).

Each one updates ``img``, ``img_shape``, ``proposals`` (clipped to the new
view; boxes that leave it are dropped with their ``region_ids``) and
``view_affine``. Region keys that are absent are left absent, so they also
work on plain images. Randomness comes from ``np.random`` (seeded per
dataloader worker by mmengine).
"""
import math
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmregion.registry import TRANSFORMS
from mmregion.structures import box_areas, clip_boxes
from .box_utils import update_regions


def _to_wh(scale: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    if isinstance(scale, int):
        return scale, scale
    if isinstance(scale, Sequence) and len(scale) == 2:
        return int(scale[0]), int(scale[1])
    raise ValueError(f'{name}: scale must be an int or a (w, h) pair, got '
                     f'{scale!r}.')


@TRANSFORMS.register_module()
class RegionRandomResizedCrop(BaseTransform):
    """Random resized crop (Inception-style) that carries region boxes.

    A crop of ``crop_ratio_range`` of the image area and aspect ratio
    (log-uniform) in ``aspect_ratio_range`` is sampled (``max_attempts``
    tries, then a centre crop) and resized to ``scale``. A box is kept when
    at least ``min_kept_ratio`` of its area lies inside the crop and its
    clipped area in the output view is at least ``min_area`` px² (CCOP:
    0.6 and 144 for 224-px views).

    Args:
        scale (int | tuple[int, int]): Output size, ``(w, h)`` (mmcv's order;
            note that mmpretrain's ``RandomResizedCrop`` reads a tuple as
            ``(h, w)``), or an int for a square.
        crop_ratio_range (tuple[float, float]): Range of the crop area over
            the image area. Defaults to (0.08, 1.0).
        aspect_ratio_range (tuple[float, float]): Range of crop w/h.
            Defaults to (3/4, 4/3).
        max_attempts (int): Crop samples before the centre-crop fallback.
            Defaults to 10.
        min_kept_ratio (float): Minimum fraction of a box's area inside the
            crop. Defaults to 0.
        min_area (float): Minimum box area in the output view (px²).
            Defaults to 0.
        interpolation (str): ``mmcv.imresize`` interpolation.
            Defaults to 'bilinear'.
        backend (str): ``mmcv.imresize`` backend, 'cv2' or 'pillow'.
            'pillow' is PIL's bilinear filter (antialiased when shrinking),
            the resize of torchvision's ``RandomResizedCrop`` that CCOP, PLRC
            and MoCo v2 train with (mmpretrain's MoCo v2 config sets
            ``backend='pillow'``); the pre-training configs use it. Defaults
            to 'cv2' (faster, no antialiasing).
    """

    def __init__(self,
                 scale: Union[int, Sequence[int]] = 224,
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 min_kept_ratio: float = 0.,
                 min_area: float = 0.,
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2') -> None:
        self.scale = _to_wh(scale, self.__class__.__name__)
        if not (0 < crop_ratio_range[0] <= crop_ratio_range[1] <= 1):
            raise ValueError('RegionRandomResizedCrop: crop_ratio_range must '
                             f'satisfy 0 < lo <= hi <= 1, got '
                             f'{crop_ratio_range}.')
        if not (0 < aspect_ratio_range[0] <= aspect_ratio_range[1]):
            raise ValueError('RegionRandomResizedCrop: aspect_ratio_range '
                             f'must satisfy 0 < lo <= hi, got '
                             f'{aspect_ratio_range}.')
        if not 0 <= min_kept_ratio <= 1:
            raise ValueError('RegionRandomResizedCrop: min_kept_ratio must '
                             f'be in [0, 1], got {min_kept_ratio}.')
        if backend not in ('cv2', 'pillow'):
            raise ValueError('RegionRandomResizedCrop: backend must be '
                             f"'cv2' or 'pillow', got {backend!r}.")
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts = max_attempts
        self.min_kept_ratio = float(min_kept_ratio)
        self.min_area = float(min_area)
        self.interpolation = interpolation
        self.backend = backend

    def get_params(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """Sample a crop of an ``h x w`` image.

        Returns:
            tuple[int, int, int, int]: ``(x0, y0, crop_w, crop_h)``.
        """
        area = h * w
        log_lo, log_hi = (math.log(r) for r in self.aspect_ratio_range)
        for _ in range(self.max_attempts):
            target_area = np.random.uniform(*self.crop_ratio_range) * area
            aspect = math.exp(np.random.uniform(log_lo, log_hi))
            cw = int(round(math.sqrt(target_area * aspect)))
            ch = int(round(math.sqrt(target_area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                x0 = np.random.randint(0, w - cw + 1)
                y0 = np.random.randint(0, h - ch + 1)
                return int(x0), int(y0), cw, ch
        # centre crop at the closest allowed aspect ratio
        ratio = w / h
        if ratio < self.aspect_ratio_range[0]:
            cw, ch = w, max(1, int(round(w / self.aspect_ratio_range[0])))
        elif ratio > self.aspect_ratio_range[1]:
            cw, ch = max(1, int(round(h * self.aspect_ratio_range[1]))), h
        else:
            cw, ch = w, h
        return (w - cw) // 2, (h - ch) // 2, cw, ch

    def transform(self, results: dict) -> dict:
        """Crop and resize ``img`` and its regions.

        Args:
            results (dict): With ``img``; optionally ``proposals``,
                ``region_ids`` and ``view_affine``.

        Returns:
            dict: The updated results.
        """
        img = results['img']
        h, w = img.shape[:2]
        x0, y0, cw, ch = self.get_params(h, w)
        out_w, out_h = self.scale
        img = img[y0:y0 + ch, x0:x0 + cw]
        results['img'] = mmcv.imresize(
            img, (out_w, out_h),
            interpolation=self.interpolation,
            backend=self.backend)
        results['img_shape'] = (out_h, out_w)

        keep = None
        if 'proposals' in results:
            boxes = np.asarray(results['proposals'], dtype=np.float32)
            boxes = boxes.reshape(-1, 4)
            inside = clip_boxes(boxes - np.array([x0, y0, x0, y0], np.float32),
                                (ch, cw))
            in_area = box_areas(inside)
            area = box_areas(boxes)
            ratio = np.divide(
                in_area, area, out=np.zeros_like(area), where=area > 0)
            view_area = in_area * (out_w / cw) * (out_h / ch)
            keep = (in_area > 0) & (ratio >= self.min_kept_ratio) & \
                (view_area >= self.min_area)
        sx, sy = out_w / cw, out_h / ch
        update_regions(results, sx, -x0 * sx, sy, -y0 * sy, keep)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'crop_ratio_range={self.crop_ratio_range}, '
                f'aspect_ratio_range={self.aspect_ratio_range}, '
                f'max_attempts={self.max_attempts}, '
                f'min_kept_ratio={self.min_kept_ratio}, '
                f'min_area={self.min_area}, '
                f'interpolation={self.interpolation!r}, '
                f'backend={self.backend!r})')


@TRANSFORMS.register_module()
class RegionRandomFlip(BaseTransform):
    """Horizontal flip with probability ``prob`` that carries region boxes.

    Sets ``flip`` (bool) and ``flip_direction`` (``'horizontal'`` or None)
    like mmcv's ``RandomFlip``.

    Args:
        prob (float): Flip probability. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(
                f'RegionRandomFlip: prob must be in [0, 1], got {prob}.')
        self.prob = prob

    def transform(self, results: dict) -> dict:
        """Flip ``img``, ``proposals`` and ``view_affine`` (maybe).

        Args:
            results (dict): With ``img``.

        Returns:
            dict: The updated results.
        """
        flip = bool(np.random.rand() < self.prob)
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        if flip:
            img = results['img']
            w = img.shape[1]
            results['img'] = mmcv.imflip(img, direction='horizontal')
            results['img_shape'] = img.shape[:2]
            update_regions(results, -1., float(w), 1., 0.)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class RegionResize(BaseTransform):
    """Resize the image and its region boxes.

    Args:
        scale (int | tuple[int, int]): ``(w, h)`` (mmcv's order) or an int.
            With ``keep_ratio=True`` it bounds the long and short edges as
            in ``mmcv.rescale_size``.
        keep_ratio (bool): Keep the aspect ratio. Defaults to False.
        interpolation (str): ``mmcv.imresize`` interpolation.
            Defaults to 'bilinear'.
        backend (str): ``mmcv.imresize`` backend. Defaults to 'cv2'.
    """

    def __init__(self,
                 scale: Union[int, Sequence[int]],
                 keep_ratio: bool = False,
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2') -> None:
        self.scale = _to_wh(scale, self.__class__.__name__)
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation
        self.backend = backend

    def transform(self, results: dict) -> dict:
        """Resize ``img`` and its regions.

        Args:
            results (dict): With ``img``.

        Returns:
            dict: The updated results (also ``scale_factor`` (w, h)).
        """
        img = results['img']
        h, w = img.shape[:2]
        if self.keep_ratio:
            new_w, new_h = mmcv.rescale_size((w, h), self.scale)
        else:
            new_w, new_h = self.scale
        results['img'] = mmcv.imresize(
            img, (new_w, new_h),
            interpolation=self.interpolation,
            backend=self.backend)
        results['img_shape'] = (new_h, new_w)
        sx, sy = new_w / w, new_h / h
        results['scale_factor'] = (sx, sy)
        update_regions(results, sx, 0., sy, 0.)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'keep_ratio={self.keep_ratio}, '
                f'interpolation={self.interpolation!r})')


__all__ = ['RegionRandomResizedCrop', 'RegionRandomFlip', 'RegionResize']
