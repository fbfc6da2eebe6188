"""Box patches cropped from the original image (DETReg's embedding target).

DETReg (github amirbar/DETReg @a4b6363, ``datasets/selfdet.py``) crops every
selective-search box from the *original* image (``img.crop(box)``, before
the detection transforms), resizes it with torchvision's ``Resize((128,
128))`` (PIL bilinear, antialiased when shrinking) and colour-augments each
crop on its own (``get_query_transforms``: ColorJitter(0.4, 0.4, 0.4, 0.1)
p=0.8, grayscale p=0.2, blur p=0.5). :class:`KeepSourceRegions` keeps the
decoded image and the loaded boxes before the geometric transforms;
:class:`BoxPatches`, after :class:`MultiViewRegions`, crops the kept regions
from them. :class:`PackRegionInputs` packs ``patches`` (K, 3, S, S) uint8
and the model (``ProSeCo`` with ``DETRegHead(target='patch')``) normalises
them like the views.
"""
from typing import Callable, List, Optional, Sequence, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmregion.registry import TRANSFORMS
from .wrappers import build_pipeline, index_of

__all__ = ['KeepSourceRegions', 'BoxPatches']

SOURCE_KEY = 'patch_source'


class _Shared:
    """A value every deep copy of the results shares (MultiViewRegions
    deep-copies the results per view and try; the source image is only
    read)."""
    __slots__ = ('value', )

    def __init__(self, value: dict) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict) -> '_Shared':
        return self


@TRANSFORMS.register_module()
class KeepSourceRegions(BaseTransform):
    """Keep the original image and boxes for :class:`BoxPatches`.

    Put it right after :class:`LoadProposals` (before any geometric
    transform). Adds ``patch_source`` (shared by the copies of the results,
    not copied): the image as decoded, the ``proposals`` in its pixels and
    their ``region_ids``.
    """

    def transform(self, results: dict) -> dict:
        """Add ``patch_source``.

        Args:
            results (dict): With ``img``, ``proposals``, ``region_ids``.

        Returns:
            dict: ``results`` with ``patch_source``.
        """
        for key in ('img', 'proposals', 'region_ids'):
            if key not in results:
                raise KeyError(f'KeepSourceRegions needs "{key}" in the '
                               'results: put it right after LoadProposals.')
        results[SOURCE_KEY] = _Shared(
            dict(
                img=results['img'],
                proposals=np.array(results['proposals'],
                                   dtype=np.float32).reshape(-1, 4),
                region_ids=np.array(results['region_ids'], dtype=np.int64)))
        return results


@TRANSFORMS.register_module()
class BoxPatches(BaseTransform):
    """Crop each kept region from the original image (DETReg's patches).

    For every region of ``region_ids`` (after :class:`MultiViewRegions`),
    its box as loaded (original pixels, not clipped by the views) is rounded
    to whole pixels as PIL's ``Image.crop`` does, clipped to the image (at
    least one pixel), cropped, resized to ``size x size`` (PIL bilinear by
    default: torchvision ``Resize`` on a PIL image, antialiased) and passed
    through ``transforms`` on its own (DETReg's per-crop colour
    augmentation). Adds ``patches`` (K, size, size, C) uint8 and removes
    ``patch_source``.

    Args:
        size (int): patch side. Defaults to 128 (DETReg ``Resize((128,
            128))``).
        transforms (Sequence): pipeline applied to each patch (a dict with
            ``img``), e.g. mmpretrain's ColorJitter / RandomGrayscale /
            GaussianBlur. Defaults to () (none).
        backend (str): ``mmcv.imresize`` backend. Defaults to 'pillow'.
        interpolation (str): Defaults to 'bilinear'.
    """

    def __init__(self,
                 size: int = 128,
                 transforms: Sequence[Union[dict, Callable]] = (),
                 backend: str = 'pillow',
                 interpolation: str = 'bilinear') -> None:
        if size < 1:
            raise ValueError(f'BoxPatches: size must be >= 1, got {size}.')
        self.size = size
        self.pipeline = build_pipeline(list(transforms))
        self.backend = backend
        self.interpolation = interpolation

    def crop(self, img: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The ``(size, size, C)`` patch of one xyxy box of ``img``."""
        h, w = img.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in np.round(box))
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
        patch = mmcv.imresize(
            img[y0:y1, x0:x1], (self.size, self.size),
            interpolation=self.interpolation,
            backend=self.backend)
        out = self.pipeline(dict(img=patch, img_shape=patch.shape[:2]))
        if out is None:
            raise ValueError('BoxPatches: a patch transform dropped the '
                             'patch; use photometric transforms only.')
        return out['img']

    def transform(self, results: dict) -> dict:
        """Add ``patches``.

        Args:
            results (dict): After :class:`MultiViewRegions`, with
                ``region_ids`` and ``patch_source``.

        Returns:
            dict: ``results`` with ``patches``.
        """
        shared: Optional[_Shared] = results.pop(SOURCE_KEY, None)
        if shared is None:
            raise KeyError('BoxPatches needs "patch_source": put '
                           'KeepSourceRegions right after LoadProposals.')
        src = shared.value
        ids = np.asarray(results['region_ids'], dtype=np.int64)
        boxes = src['proposals'][index_of(src['region_ids'], ids)]
        img = src['img']
        chans = img.shape[2] if img.ndim == 3 else 1
        patches: List[np.ndarray] = [self.crop(img, box) for box in boxes]
        results['patches'] = np.stack(patches).astype(np.uint8).reshape(
            len(ids), self.size, self.size, chans) if patches else np.zeros(
                (0, self.size, self.size, chans), np.uint8)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, backend='
                f'{self.backend!r}, interpolation={self.interpolation!r}, '
                f'transforms={self.pipeline})')
