"""Pack multi-view region samples for the model (``docs/design.md`` sec. 2)."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmregion.registry import TRANSFORMS


def _img_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W[, C]) array -> contiguous (C, H, W) tensor, dtype kept."""
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackRegionInputs(BaseTransform):
    """Pack the output of :class:`MultiViewRegions` into model inputs.

    Returns ``dict(inputs=[V tensors (3, H, W) uint8],
    data_samples=DataSample)`` where the
    ``mmpretrain.structures.DataSample`` holds the data fields
    ``boxes`` (V, K, 4) float32, ``region_ids`` (K,) long and
    ``view_affine`` (V, 4) float32 (and ``patches`` (K, C, S, S) uint8 when
    :class:`BoxPatches` made them), and the metainfo ``meta_keys`` present
    in the results (``img_shape`` is a list of V ``(h, w)``).

    A single-view sample (``img`` an array, boxes in ``proposals``) is packed
    as one view (V = 1).

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo when
            present. Defaults to
            ``('img_path', 'img_id', 'ori_shape', 'img_shape')``.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('img_path', 'img_id', 'ori_shape',
                                    'img_shape')
    ) -> None:
        from mmpretrain.structures import DataSample
        self._data_sample_cls = DataSample
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``.

        Args:
            results (dict): Output of :class:`MultiViewRegions`.

        Returns:
            dict: ``inputs`` (list of V tensors) and ``data_samples``.
        """
        imgs = results['img']
        if isinstance(imgs, (list, tuple)):
            boxes = results['boxes']
            view_affine = results['view_affine']
            img_shape = results['img_shape']
        else:  # one view, straight from the geometric transforms
            imgs = [imgs]
            boxes = np.asarray(results['proposals'])[None]
            view_affine = np.asarray(results['view_affine'])[None]
            img_shape = [tuple(results['img'].shape[:2])]
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.ndim != 3 or boxes.shape[0] != len(imgs) or \
                boxes.shape[2] != 4:
            raise ValueError('PackRegionInputs: boxes must be (V, K, 4) with '
                             f'V={len(imgs)}, got {boxes.shape} for '
                             f'"{results.get("img_path")}".')

        data_sample = self._data_sample_cls()
        data_sample.set_field(
            torch.from_numpy(boxes), 'boxes', dtype=torch.Tensor)
        data_sample.set_field(
            torch.as_tensor(
                np.asarray(results['region_ids']), dtype=torch.long),
            'region_ids',
            dtype=torch.Tensor)
        data_sample.set_field(
            torch.as_tensor(np.asarray(view_affine),
                            dtype=torch.float32).reshape(-1, 4),
            'view_affine',
            dtype=torch.Tensor)
        if 'patches' in results:  # BoxPatches: (K, S, S, C) -> (K, C, S, S)
            patches = np.asarray(results['patches'])
            if patches.ndim != 4 or len(patches) != boxes.shape[1]:
                raise ValueError(
                    'PackRegionInputs: patches must be (K, S, S, C) with '
                    f'K={boxes.shape[1]} regions, got {patches.shape} for '
                    f'"{results.get("img_path")}".')
            data_sample.set_field(
                torch.from_numpy(
                    np.ascontiguousarray(patches.transpose(0, 3, 1, 2))),
                'patches',
                dtype=torch.Tensor)
        metainfo = {k: results[k] for k in self.meta_keys if k in results}
        if 'img_shape' in self.meta_keys:
            metainfo['img_shape'] = [tuple(s[:2]) for s in img_shape]
        data_sample.set_metainfo(metainfo)
        return dict(
            inputs=[_img_to_tensor(img) for img in imgs],
            data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
