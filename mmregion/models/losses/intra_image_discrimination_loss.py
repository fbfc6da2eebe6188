"""CCOP's intra-image object-level discrimination loss (margin/triplet).

Per image, with online region embeddings ``q_a`` (view 1) and momentum
embeddings ``k_b`` of the un-jittered regions (view 2)::

    S[a, b] = q_a . k_b
    loss    = mean over valid pairs (a, b) of relu(S[a, b] - S[b, b] + margin)

A pair is valid when both regions are real (not padding), ``a != b`` and the
two key boxes overlap with IoU < ``neg_iou_thr`` (clearly different objects).
The mean runs over all valid pairs of the batch (github ChenhongyiYang/CCOP
``openselfsup/models/ccop.py``, ``intra_loss``). Unlike the official code, a
batch without any valid pair gives 0 (with a graph), not NaN.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

from mmregion.registry import MODELS
from .utils import BaseLoss, weighted_reduce

__all__ = ['IntraImageDiscriminationLoss', 'intra_image_discrimination_loss']


def intra_image_discrimination_loss(
        query: Tensor,
        key: Tensor,
        boxes: Tensor,
        valid: Tensor,
        margin: float = 0.4,
        neg_iou_thr: float = 0.05,
        weight: Optional[Tensor] = None,
        reduction: str = 'none',
        avg_factor: Optional[float] = None) -> Tensor:
    """Hinge loss between regions of the same image, batched with padding.

    Args:
        query (Tensor): (B, K, D) online region embeddings (view 1).
        key (Tensor): (B, K, D) momentum embeddings of the same regions,
            un-jittered (view 2).
        boxes (Tensor): (B, K, 4) xyxy boxes used for the IoU rule (CCOP:
            the key boxes).
        valid (Tensor): (B, K) bool, False for padded regions.
        margin (float): Hinge margin. Defaults to 0.4 (CCOP).
        neg_iou_thr (float): Two regions are negatives of each other only
            when their IoU is below this (mmdet's ``neg_iou_thr``). Defaults
            to 0.05 (CCOP).
        weight (Tensor, optional): (B, K, K) per-pair weights.
        reduction (str): 'none' ((B, K, K) losses, 0 outside the valid
            pairs), 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): Divisor of the mean. Defaults to the
            (weighted) number of valid pairs.

    Returns:
        Tensor: (B, K, K) for 'none', else a scalar (0 without valid pair).
    """
    if query.dim() != 3 or query.shape != key.shape:
        raise ValueError('intra_image_discrimination_loss: query and key '
                         'must both be (B, K, D), got '
                         f'{tuple(query.shape)} and {tuple(key.shape)}.')
    if boxes.shape[:2] != query.shape[:2] or valid.shape != query.shape[:2]:
        raise ValueError('intra_image_discrimination_loss: boxes (B, K, 4) '
                         'and valid (B, K) must match query (B, K, D), got '
                         f'{tuple(boxes.shape)}, {tuple(valid.shape)}.')
    num = query.shape[1]
    sim = torch.einsum('bkd,bld->bkl', query, key)  # S[b, a, c] = q_a.k_c
    pos = torch.diagonal(sim, dim1=1, dim2=2)  # (B, K): S[b, c, c]
    hinge = F.relu(sim - pos[:, None, :] + margin)
    with torch.no_grad():
        valid = valid.bool()
        ious = bbox_overlaps(boxes.float(), boxes.float())  # (B, K, K)
        eye = torch.eye(num, dtype=torch.bool, device=query.device)
        mask = valid[:, :, None] & valid[:, None, :] & (ious < neg_iou_thr) \
            & ~eye
    # padded entries may hold anything: zero them so they cannot leak
    hinge = torch.where(mask, hinge, torch.zeros_like(hinge))
    return weighted_reduce(hinge, weight, reduction, avg_factor, mask=mask)


@MODELS.register_module()
class IntraImageDiscriminationLoss(BaseLoss):
    """Module form of :func:`intra_image_discrimination_loss`.

    Args:
        margin (float): Hinge margin. Defaults to 0.4 (CCOP).
        neg_iou_thr (float): IoU below which two regions are negatives.
            Defaults to 0.05 (CCOP).
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier. Defaults to 1.0 (CCOP).
    """

    def __init__(self,
                 margin: float = 0.4,
                 neg_iou_thr: float = 0.05,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        self.margin = margin
        self.neg_iou_thr = neg_iou_thr

    def forward(self,
                query: Tensor,
                key: Tensor,
                boxes: Tensor,
                valid: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss (arguments as in the function)."""
        return self.loss_weight * intra_image_discrimination_loss(
            query,
            key,
            boxes,
            valid,
            margin=self.margin,
            neg_iou_thr=self.neg_iou_thr,
            weight=weight,
            reduction=self.get_reduction(reduction_override),
            avg_factor=avg_factor)
