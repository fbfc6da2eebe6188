"""DETR-style multi-scale geometry that carries region boxes (DETReg).

DETReg pre-trains with DETR's transforms (amirbar/DETReg
``datasets/selfdet.py`` ``make_self_det_transforms``, ``datasets/
transforms.py``): a flip, then with probability 0.5 each either
``RandomResize(scales, max_size=600)`` or ``RandomResize([400, 500, 600])``
+ ``RandomSizeCrop(384, 600)`` + ``RandomResize(scales, max_size=600)``;
batches are padded to their largest image, the padding masked. Here:
:class:`RegionRandomChoiceResize` and :class:`RegionRandomSizeCrop` (the
two branches are mmcv's ``RandomChoice``) and :class:`RegionPadToCanvas`,
which pads every image to one fixed canvas so that the views of a batch
stack (``region_collate``) while ``img_shape`` stays the image's own size
(the detector masks the rest, as DETR's padding). Like the transforms of
:mod:`.geometric` they update ``img``, ``img_shape``, ``proposals``
(clipped; boxes left without area dropped with their ``region_ids``) and
``view_affine``.
"""
from typing import Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmregion.registry import TRANSFORMS
from .box_utils import update_regions

__all__ = [
    'RegionRandomChoiceResize', 'RegionRandomSizeCrop', 'RegionPadToCanvas',
    'detr_resize_shape'
]


def detr_resize_shape(h: int, w: int, size: int,
                      max_size: Optional[int]) -> Tuple[int, int]:
    """DETR's ``get_size_with_aspect_ratio``: the short side becomes
    ``size``, reduced so that the long side stays about ``max_size``.

    Args:
        h, w (int): Image size.
        size (int): Target short side.
        max_size (int, optional): Bound of the long side (DETR's rounding
            can pass it by a pixel or two for elongated images).

    Returns:
        tuple[int, int]: ``(new_h, new_w)``.
    """
    if max_size is not None:
        short, long = float(min(h, w)), float(max(h, w))
        if long / short * size > max_size:
            size = int(round(max_size * short / long))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return int(size * h / w), size
    return size, int(size * w / h)


def _resize(results: dict, new_h: int, new_w: int, backend: str) -> None:
    img = results['img']
    h, w = img.shape[:2]
    results['img'] = mmcv.imresize(
        img, (new_w, new_h), interpolation='bilinear', backend=backend)
    results['img_shape'] = (new_h, new_w)
    update_regions(results, new_w / w, 0., new_h / h, 0.)


@TRANSFORMS.register_module()
class RegionRandomChoiceResize(BaseTransform):
    """DETR's ``RandomResize``: the short side becomes one of ``scales``
    (drawn uniformly), the long side bounded by ``max_size``.

    Args:
        scales (Sequence[int]): Short-side sizes to draw from.
        max_size (int, optional): Long-side bound. Defaults to None.
        backend (str): ``mmcv.imresize`` backend; 'pillow' is PIL's bilinear
            as DETR (torchvision ``F.resize`` of a PIL image). Defaults to
            'pillow'.
    """

    def __init__(self,
                 scales: Sequence[int],
                 max_size: Optional[int] = None,
                 backend: str = 'pillow') -> None:
        scales = list(scales)
        if not scales or any(int(s) < 1 for s in scales):
            raise ValueError('RegionRandomChoiceResize: scales must be ints '
                             f'>= 1, got {scales}')
        self.scales = [int(s) for s in scales]
        self.max_size = None if max_size is None else int(max_size)
        self.backend = backend

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        size = self.scales[np.random.randint(len(self.scales))]
        new_h, new_w = detr_resize_shape(h, w, size, self.max_size)
        _resize(results, new_h, new_w, self.backend)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scales={self.scales}, '
                f'max_size={self.max_size})')


@TRANSFORMS.register_module()
class RegionRandomSizeCrop(BaseTransform):
    """DETR's ``RandomSizeCrop``: a crop of random size ``w ~ U{min_size,
    ..., min(W, max_size)}``, ``h`` likewise, at a random place
    (torchvision ``RandomCrop.get_params``).

    Args:
        min_size (int): Smallest crop side. Defaults to 384 (DETReg).
        max_size (int): Largest crop side. Defaults to 600 (DETReg).
    """

    def __init__(self, min_size: int = 384, max_size: int = 600) -> None:
        if not 1 <= min_size <= max_size:
            raise ValueError('RegionRandomSizeCrop: need 1 <= min_size <= '
                             f'max_size, got {min_size}, {max_size}')
        self.min_size = int(min_size)
        self.max_size = int(max_size)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        # DETR: random.randint(min_size, min(img_side, max_size)); an image
        # smaller than min_size is taken whole
        cw = np.random.randint(
            min(self.min_size, w),
            min(w, self.max_size) + 1)
        ch = np.random.randint(
            min(self.min_size, h),
            min(h, self.max_size) + 1)
        top = np.random.randint(0, h - ch + 1)
        left = np.random.randint(0, w - cw + 1)
        results['img'] = img[top:top + ch, left:left + cw]
        results['img_shape'] = (ch, cw)
        update_regions(results, 1., -float(left), 1., -float(top))
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_size}, '
                f'max_size={self.max_size})')


@TRANSFORMS.register_module()
class RegionPadToCanvas(BaseTransform):
    """Pad the image at the bottom and right to a fixed ``(h, w)`` canvas.

    ``img_shape`` stays the image's own size (``MultiViewRegions`` then
    reports it for the view, and the detector masks the padding, as
    DETR's batch padding), ``pad_shape`` is the canvas. Boxes do not move.

    Args:
        size (tuple[int, int]): Canvas ``(h, w)``. Defaults to (608, 608):
            DETReg's images are at most 600 px (DETR's rounding may add a
            pixel or two).
        pad_val (int): Fill value. Defaults to 0.

    Raises:
        ValueError: At transform time, an image larger than the canvas
            (naming both sizes).
    """

    def __init__(self,
                 size: Sequence[int] = (608, 608),
                 pad_val: int = 0) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.pad_val = pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        if h > self.size[0] or w > self.size[1]:
            raise ValueError(f'RegionPadToCanvas: image {h}x{w} of '
                             f'{results.get("img_path")} is larger than the '
                             f'{self.size[0]}x{self.size[1]} canvas')
        canvas = np.full(
            (self.size[0], self.size[1]) + img.shape[2:],
            self.pad_val,
            dtype=img.dtype)
        canvas[:h, :w] = img
        results['img'] = canvas
        results['img_shape'] = (h, w)
        results['pad_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size})'
