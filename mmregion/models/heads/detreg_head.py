"""DETReg's object-embedding objective (Bar et al., CVPR 2022; github
amirbar/DETReg @a4b6363).

Each student query Hungarian-matched to a selective-search box (the
head's ``assigner``: DETReg matches once, with the localisation loss's
costs, so the DETReg config gives both the same ``match_costs``) is paired
with a detached backbone feature of that box, and the loss is
``loss(pred, target)`` over the matched pairs (num_matched, D): DETReg's
``F.l1_loss(pred, target, reduction='mean')``
(``models/deformable_detr.py:322``) is mmdet's ``L1Loss`` with its default
reduction. The target is the global average of a backbone level computed
on a 128 x 128 patch of the box, computed by the algorithm
(:func:`~mmregion.models.utils.region_targets`) as ``target_cfg`` says:

- ``target='patch'`` (DETReg): the patch made by the data pipeline
  (:class:`BoxPatches`: the box cropped from the original image, PIL
  antialiased resize, colour-augmented per patch, ``datasets/selfdet.py``);
- ``target='crop'``: RoIAlign (one sample per bin) of the box in the target
  view, resized to 128 x 128 on the model side (no pipeline work; large
  boxes show aliasing when shrunk; the colour augmentation is per image);
- ``target='roi'``: RoIAlign ``roi_size`` of the full-image feature,
  averaged (cheapest).
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmregion.registry import MODELS, TASK_UTILS

__all__ = ['DETRegHead']

TARGETS = ('patch', 'crop', 'roi')


@MODELS.register_module()
class DETRegHead(BaseModule):
    """DETReg's embedding loss between matched queries and box features.

    Args:
        loss (dict): Loss called as ``loss(pred, target)`` with (num_matched,
            D) inputs, e.g. ``dict(type='mmdet.L1Loss')``.
        assigner (dict): Query-to-box assigner (``TASK_UTILS``), called as
            mmdet's ``HungarianAssigner``; DETReg's is the detector's
            ``train_cfg.assigner`` (focal 2, L1 5, GIoU 2).
        target (str): ``'patch'``, ``'crop'`` or ``'roi'`` (module
            docstring). Defaults to ``'roi'``.
        feat_level (int): Backbone output level pooled for the target; its
            channels must equal D. Defaults to 0 (C3 for ``out_indices=(1,
            2, 3)``, as DETReg's layer2 target).
        roi_size (int): RoIAlign output size for ``target='roi'``.
            Defaults to 7.
        crop_size (int): Crop side for ``target='crop'``. Defaults to 128
            (DETReg ``datasets/selfdet.py``; ``BoxPatches.size`` for
            ``'patch'``).
        init_cfg (dict, optional): Initialisation config.
    """
    with_teacher = False

    def __init__(self,
                 loss: dict,
                 assigner: dict,
                 target: str = 'roi',
                 feat_level: int = 0,
                 roi_size: int = 7,
                 crop_size: int = 128,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if target not in TARGETS:
            raise ValueError(f'DETRegHead: target must be one of {TARGETS}, '
                             f'got "{target}".')
        self.loss_module = MODELS.build(loss)
        self.assigner = TASK_UTILS.build(assigner)
        self.target_cfg = dict(
            kind=target,
            level=feat_level,
            roi_size=roi_size,
            crop_size=crop_size)

    def loss(self, embeds: Tensor, cls_scores: Tensor, bbox_preds: Tensor,
             det_samples: Sequence,
             targets: List[Tensor]) -> Dict[str, Tensor]:
        """Match the queries to the boxes and regress their targets.

        Args:
            embeds (Tensor): (B, N, D) student object embeddings.
            cls_scores (Tensor): (B, N, 1) student objectness (last layer).
            bbox_preds (Tensor): (B, N, 4) student boxes, normalised cxcywh.
            det_samples (Sequence[DetDataSample]): The student view's
                samples, ``gt_instances`` = the selective-search boxes.
            targets (list[Tensor]): Per image, (K_b, C) target feature of
                each box, row ``k`` = ``gt_instances`` row ``k`` (no grad).

        Returns:
            dict[str, Tensor]: ``loss_embed`` (0, in the graph, when no
            query is matched).
        """
        preds, picked = [], []
        with torch.no_grad():
            for i, det in enumerate(det_samples):
                if len(det.gt_instances) == 0:
                    continue
                img_h, img_w = det.metainfo['img_shape']
                factor = bbox_preds.new_tensor([img_w, img_h, img_w, img_h])
                pred = InstanceData(
                    scores=cls_scores[i],
                    bboxes=bbox_cxcywh_to_xyxy(bbox_preds[i]) * factor)
                gt_inds = self.assigner.assign(
                    pred_instances=pred,
                    gt_instances=det.gt_instances,
                    img_meta=det.metainfo).gt_inds
                matched = (gt_inds > 0).nonzero()[:, 0]
                preds.append((i, matched))
                picked.append(targets[i][gt_inds[matched] - 1])
        if not preds or not sum(len(m) for _, m in preds):
            return dict(loss_embed=embeds.sum() * 0)
        target = torch.cat(picked).to(embeds)
        if target.size(1) != embeds.size(-1):
            raise ValueError(
                f'DETRegHead: the neck\'s out_channels={embeds.size(-1)} must '
                f'equal the channels ({target.size(1)}) of backbone level '
                f'{self.target_cfg["level"]} (head.feat_level).')
        pred = torch.cat([embeds[i, m] for i, m in preds])
        return dict(loss_embed=self.loss_module(pred, target))
