"""Backbone features of boxes: the targets of DETReg's embedding loss.

:func:`region_targets` gives, per image, the detached global-average
feature of one backbone level for each of its boxes, from the pipeline's
patches (``'patch'``), from model-side crops of the view (``'crop'``) or by
RoIAlign of the view's own feature map (``'roi'``); see
:class:`~mmregion.models.heads.DETRegHead`. :func:`backbone_level` runs a
backbone only as far as the level asked for.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['backbone_level', 'region_targets']

CHUNK = 64  # patches per backbone call: bounded memory


class _StageOutput(Exception):
    """Carries a stage's output out of the backbone's forward."""

    def __init__(self, out: Tensor) -> None:
        super().__init__()
        self.out = out


def backbone_level(backbone: nn.Module, x: Tensor, level: int) -> Tensor:
    """Output ``level`` of ``backbone(x)``, computed only as far as needed.

    An mmdet/mmpretrain ResNet (``res_layers`` + ``out_indices``) runs its
    own ``forward`` and stops after the stage that gives the level (a
    forward hook on that stage); any other backbone runs in full.

    Args:
        backbone (nn.Module): Returns a tuple of levels.
        x (Tensor): (R, 3, H, W) images.
        level (int): Index in the backbone's outputs.

    Returns:
        Tensor: (R, C, h, w) the level's feature map.
    """
    res_layers = getattr(backbone, 'res_layers', None)
    out_indices = getattr(backbone, 'out_indices', None)
    if res_layers is None or out_indices is None:
        return backbone(x)[level]
    stages = sorted(out_indices)
    if not 0 <= level < len(stages):
        raise ValueError(f'backbone_level: the backbone has {len(stages)} '
                         f'output levels (out_indices={out_indices}), no '
                         f'level {level}.')

    def stop(module, args, out):
        raise _StageOutput(out)

    handle = getattr(backbone,
                     res_layers[stages[level]]).register_forward_hook(stop)
    try:
        backbone(x)
    except _StageOutput as found:
        return found.out
    finally:
        handle.remove()
    raise RuntimeError('backbone_level: the stage of level '
                       f'{level} never ran.')


def _pooled(backbone: nn.Module, x: Tensor, level: int) -> Tensor:
    """(R, C) global average of ``level`` of (R, 3, S, S) patches."""
    return torch.cat([
        backbone_level(backbone, chunk, level).mean((2, 3))
        for chunk in x.split(CHUNK)
    ])


def region_targets(backbone: nn.Module,
                   images: Tensor,
                   boxes: Sequence[Tensor],
                   kind: str,
                   level: int,
                   roi_size: int = 7,
                   crop_size: int = 128,
                   feats: Optional[Sequence[Tensor]] = None,
                   patches: Optional[Sequence[Tensor]] = None) -> List[Tensor]:
    """Per image, the detached (K_b, C) feature of each of its boxes.

    Args:
        backbone (nn.Module): The backbone giving the features.
        images (Tensor): (B, 3, H, W) the view the boxes are in.
        boxes (Sequence[Tensor]): Per image, (K_b, 4) xyxy pixels of
            ``images``.
        kind (str): ``'patch'``, ``'crop'`` or ``'roi'``.
        level (int): Backbone output level.
        roi_size (int): RoIAlign size of ``'roi'``. Defaults to 7.
        crop_size (int): Crop side of ``'crop'``. Defaults to 128.
        feats (Sequence[Tensor], optional): ``backbone(images)`` when
            already computed (``'roi'``).
        patches (Sequence[Tensor], optional): Per image, (K_b, 3, S, S)
            normalised patches of its boxes (``'patch'``).

    Returns:
        list[Tensor]: B tensors (K_b, C), row ``k`` = box ``k``.
    """
    from mmcv.ops import roi_align
    from mmdet.structures.bbox import bbox2roi
    counts = [len(b) for b in boxes]
    if kind == 'patch' and (patches is None or [len(p)
                                                for p in patches] != counts):
        raise ValueError(
            "DETRegHead target='patch' needs one patch per region "
            '(data_samples[i].patches, (K, 3, S, S)): add KeepSourceRegions '
            'after LoadProposals and BoxPatches after MultiViewRegions '
            '(configs/mmregion/detreg_deformable-detr_r50_coco.py), or use '
            "target='crop'.")
    if not sum(counts):
        return [images.new_zeros((0, 0)) for _ in counts]
    with torch.no_grad():
        if kind == 'patch':
            out = _pooled(backbone, torch.cat(list(patches)), level)
        elif kind == 'crop':
            rois = bbox2roi([b.to(images) for b in boxes])
            out = torch.cat([
                _pooled(
                    backbone,
                    roi_align(images, chunk, (crop_size, ) * 2, 1.0, 1, 'avg',
                              True), level) for chunk in rois.split(CHUNK)
            ])
        else:
            rois = bbox2roi([b.to(images) for b in boxes])
            feat = feats[level].detach() if feats is not None else \
                backbone_level(backbone, images, level)
            out = roi_align(feat, rois, (roi_size, ) * 2,
                            feat.size(-1) / images.size(-1), 0, 'avg',
                            True).mean((2, 3))
    return list(out.split(counts))
