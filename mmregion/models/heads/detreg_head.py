"""DETReg's object-embedding objective (Bar et al., CVPR 2022; github
amirbar/DETReg @a4b6363).

Each student query Hungarian-matched (the detector head's assigner, as the
localisation loss) to a selective-search box is paired with a detached
backbone feature of that box, and the loss is ``loss(pred, target)`` over the
matched pairs (num_matched, D): DETReg's ``F.l1_loss(pred, target,
reduction='mean')`` (``models/deformable_detr.py:322``) is mmdet's
``L1Loss`` with its default reduction. The target is the global average
of a backbone level computed on a 128 x 128 patch of the box:

- ``target='patch'`` (DETReg): the patch made by the data pipeline
  (:class:`BoxPatches`: the box cropped from the original image, PIL
  antialiased resize, colour-augmented per patch, ``datasets/selfdet.py``);
- ``target='crop'``: RoIAlign (one sample per bin) of the box in the target
  view, resized to 128 x 128 on the model side (no pipeline work; large
  boxes alias when shrunk, the view's colour augmentation is per image);
- ``target='roi'``: RoIAlign ``roi_size`` of the full-image feature,
  averaged (cheapest).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmregion.registry import MODELS

__all__ = ['DETRegHead']


@MODELS.register_module()
class DETRegHead(BaseModule):
    """DETReg embedding target and loss.

    Args:
        loss (dict): Loss called as ``loss(pred, target)`` with (num_matched,
            D) inputs, e.g. ``dict(type='mmdet.L1Loss')``.
        feat_level (int): Backbone output level pooled for the target; its
            channels must equal D. Defaults to 0 (C3 for ``out_indices=(1,
            2, 3)``, as DETReg's layer2 target).
        roi_size (int): RoIAlign output size for ``target='roi'``.
            Defaults to 7.
        target (str): ``'patch'``, ``'crop'`` or ``'roi'`` (module
            docstring). Defaults to ``'roi'``.
        crop_size (int): Crop side for ``target='crop'``. Defaults to 128
            (DETReg ``datasets/selfdet.py``; ``BoxPatches.size`` for
            ``'patch'``).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 loss: dict,
                 feat_level: int = 0,
                 roi_size: int = 7,
                 target: str = 'roi',
                 crop_size: int = 128,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if target not in ('patch', 'crop', 'roi'):
            raise ValueError('ProSeCo: embed_target must be "patch", "crop" '
                             f'or "roi", got "{target}".')
        self.loss_module = MODELS.build(loss)
        self.feat_level = feat_level
        self.roi_size = roi_size
        self.target = target
        self.crop_size = crop_size

    def loss(self,
             embeds: Tensor,
             cls_scores: Tensor,
             bbox_preds: Tensor,
             det_samples: list,
             target_boxes: List[Tensor],
             images: Tensor,
             backbone: nn.Module,
             assigner,
             feats: Optional[Sequence[Tensor]] = None,
             patches: Optional[Sequence[Tensor]] = None) -> Dict[str, Tensor]:
        """DETReg embedding loss.

        Args:
            embeds (Tensor): (B, N, D) student object embeddings.
            cls_scores (Tensor): (B, N, 1) student objectness (last layer).
            bbox_preds (Tensor): (B, N, 4) student boxes, normalised cxcywh.
            det_samples (list[DetDataSample]): The student view's samples
                with ``gt_instances`` (the selective-search boxes).
            target_boxes (list[Tensor]): Per image, (K_b, 4) xyxy boxes of
                the same regions as ``gt_instances``, in ``images``' pixels.
            images (Tensor): (B, 3, H, W) view giving the target.
            backbone (nn.Module): The student's backbone.
            assigner: The detector head's Hungarian assigner.
            feats (Sequence[Tensor], optional): ``backbone(images)`` when
                already computed (target view == student view).
            patches (Sequence[Tensor], optional): per image, ``(K_b, 3, S,
                S)`` normalised patches of its regions (``target='patch'``),
                row ``k`` = region ``k`` (= ``gt_instances`` row ``k``).

        Returns:
            dict[str, Tensor]: ``loss_embed``.
        """
        if self.target == 'patch' and (
                patches is None or len(patches) != len(det_samples) or any(
                    len(p) != len(d.gt_instances)
                    for p, d in zip(patches, det_samples))):
            raise ValueError(
                "ProSeCo: embed_target='patch' needs one patch per region "
                '(data_samples[i].patches, (K, 3, S, S)): add '
                'KeepSourceRegions after LoadProposals and BoxPatches after '
                'MultiViewRegions (configs/mmregion/detreg_deformable-detr_'
                'r50_coco.py), or use embed_target="crop".')
        rois, picked = [], []
        pos = torch.zeros(
            embeds.shape[:2], dtype=torch.bool, device=embeds.device)
        with torch.no_grad():
            for i, det in enumerate(det_samples):
                img_h, img_w = det.metainfo['img_shape']
                factor = bbox_preds.new_tensor([img_w, img_h, img_w, img_h])
                pred = InstanceData(
                    scores=cls_scores[i],
                    bboxes=bbox_cxcywh_to_xyxy(bbox_preds[i]) * factor)
                if len(det.gt_instances) == 0:
                    continue
                gt_inds = assigner.assign(
                    pred_instances=pred,
                    gt_instances=det.gt_instances,
                    img_meta=det.metainfo).gt_inds
                matched = (gt_inds > 0).nonzero()[:, 0]
                tgt = target_boxes[i].to(bbox_preds)[gt_inds[matched] - 1]
                pos[i, matched] = True
                rois.append(
                    torch.cat([tgt.new_full((len(matched), 1), i), tgt], 1))
                if self.target == 'patch':
                    picked.append(patches[i][gt_inds[matched] - 1])
        if not pos.any():
            return dict(loss_embed=embeds.sum() * 0)
        # rows of ``rois`` follow ``pos.nonzero()`` (image, then query)
        rois = torch.cat(rois)
        with torch.no_grad():
            if self.target == 'patch':
                target = self.patch_targets(torch.cat(picked), backbone)
            else:
                target = self.targets(images, rois, backbone, feats)  # (R, C)
        if target.size(1) != embeds.size(-1):
            raise ValueError(
                f'ProSeCo: embed_head out_channels={embeds.size(-1)} must '
                f'equal the channels ({target.size(1)}) of backbone level '
                f'{self.feat_level} for the DETReg embedding loss.')
        return dict(loss_embed=self.loss_module(embeds[pos], target))

    def patch_targets(self, patches: Tensor, backbone: nn.Module) -> Tensor:
        """Global average ``(R, C)`` of backbone level ``feat_level`` of
        ``(R, 3, S, S)`` patches (in chunks of 64: bounded memory)."""
        return torch.cat([
            self.backbone_level(backbone, chunk, self.feat_level).mean((2, 3))
            for chunk in patches.split(64)
        ])

    def targets(self,
                images: Tensor,
                rois: Tensor,
                backbone: nn.Module,
                feats: Optional[Sequence[Tensor]] = None) -> Tensor:
        """Pooled backbone feature (R, C) of each roi (R, 5) (batch index,
        xyxy pixels of ``images``), see ``target``."""
        from mmcv.ops import roi_align
        level = self.feat_level
        if self.target == 'crop':
            size = (self.crop_size, ) * 2
            return torch.cat([
                self.patch_targets(
                    roi_align(images, chunk, size, 1.0, 1, 'avg', True),
                    backbone) for chunk in rois.split(64)
            ])
        feat = feats[level].detach() if feats is not None else \
            backbone(images)[level]
        return roi_align(feat, rois, (self.roi_size, ) * 2,
                         feat.size(-1) / images.size(-1), 0, 'avg', True).mean(
                             (2, 3))

    @staticmethod
    def backbone_level(backbone: nn.Module, x: Tensor, level: int) -> Tensor:
        """Output ``level`` of the backbone, stopping after its stage (an
        mmdet/mmpretrain ResNet); any other backbone runs in full."""
        res_layers = getattr(backbone, 'res_layers', None)
        out_indices = getattr(backbone, 'out_indices', None)
        if res_layers is None or out_indices is None or \
                getattr(backbone, 'plugins', None):
            return backbone(x)[level]
        if getattr(backbone, 'deep_stem', False):
            x = backbone.stem(x)
        else:
            x = backbone.relu(backbone.norm1(backbone.conv1(x)))
        x = backbone.maxpool(x)
        found = -1
        for i, name in enumerate(res_layers):
            x = getattr(backbone, name)(x)
            if i in out_indices:
                found += 1
                if found == level:
                    return x
        raise ValueError(f'ProSeCo: backbone has no output level {level}.')
