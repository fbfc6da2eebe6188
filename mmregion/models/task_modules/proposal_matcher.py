"""Unsupervised proposal matching of ProSeCo (teacher proposals -> student).

Per image i, ProSeCo solves
``sigma_i = argmin_sigma sum_j L_match(y_(i,j), yhat_(i,sigma(j)))`` with the
teacher's proposals ``y`` as targets and the student's predictions ``yhat``;
the cost mixes feature similarity, L1 between boxes and generalised IoU (DETR
style). The (B, N_t, N_s) cost tensor is built for the whole batch at once in
torch; only the assignment runs per image, on CPU, with
``scipy.optimize.linear_sum_assignment``.
"""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmregion.registry import TASK_UTILS

__all__ = ['ProposalHungarianMatcher']


@TASK_UTILS.register_module()
class ProposalHungarianMatcher:
    """One-to-one matching of teacher proposals to student predictions.

    ``cost = feat_weight * (-cos(z_t, z_s)) + l1_weight * |b_t - b_s|_1
    + giou_weight * (-GIoU(b_t, b_s))``.

    Args:
        feat_weight (float): Weight of the negative cosine similarity of the
            embeddings. Defaults to 2.0 (assumed: ProSeCo's weights are not
            public; it takes the place of DETR's class cost 2).
        l1_weight (float): Weight of the L1 distance of the normalised
            (cx, cy, w, h) boxes. Defaults to 5.0 (DETR / DETReg).
        giou_weight (float): Weight of the negative GIoU. Defaults to 2.0
            (DETR / DETReg).
        box_format (str): Format of the input boxes, 'cxcywh' (normalised,
            as DETR heads predict) or 'xyxy'. The L1 cost is computed in this
            format. Defaults to 'cxcywh'.
    """

    def __init__(self,
                 feat_weight: float = 2.0,
                 l1_weight: float = 5.0,
                 giou_weight: float = 2.0,
                 box_format: str = 'cxcywh') -> None:
        if box_format not in ('cxcywh', 'xyxy'):
            raise ValueError('ProposalHungarianMatcher: box_format must be '
                             f"'cxcywh' or 'xyxy', got {box_format}")
        self.feat_weight = feat_weight
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight
        self.box_format = box_format

    @torch.no_grad()
    def cost(self, tgt_embeds: Tensor, tgt_boxes: Tensor, pred_embeds: Tensor,
             pred_boxes: Tensor) -> Tensor:
        """Batched matching cost.

        Args:
            tgt_embeds (Tensor): (B, N_t, D) teacher proposal embeddings.
            tgt_boxes (Tensor): (B, N_t, 4) teacher boxes.
            pred_embeds (Tensor): (B, N_s, D) student embeddings.
            pred_boxes (Tensor): (B, N_s, 4) student boxes.

        Returns:
            Tensor: (B, N_t, N_s) cost.
        """
        from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
        tgt_boxes, pred_boxes = tgt_boxes.float(), pred_boxes.float()
        cost = tgt_boxes.new_zeros(tgt_boxes.shape[:2] + pred_boxes.shape[1:2])
        if self.feat_weight:
            sim = F.normalize(
                tgt_embeds.float(), dim=-1) @ F.normalize(
                    pred_embeds.float(), dim=-1).transpose(1, 2)
            cost = cost - self.feat_weight * sim
        if self.l1_weight:
            cost = cost + self.l1_weight * torch.cdist(
                tgt_boxes, pred_boxes, p=1)
        if self.giou_weight:
            if self.box_format == 'cxcywh':
                tgt_xyxy = bbox_cxcywh_to_xyxy(tgt_boxes)
                pred_xyxy = bbox_cxcywh_to_xyxy(pred_boxes)
            else:
                tgt_xyxy, pred_xyxy = tgt_boxes, pred_boxes
            giou = bbox_overlaps(tgt_xyxy, pred_xyxy, mode='giou')
            cost = cost - self.giou_weight * giou
        return cost

    @torch.no_grad()
    def match(self, tgt_embeds: Tensor, tgt_boxes: Tensor, pred_embeds: Tensor,
              pred_boxes: Tensor) -> Tuple[Tensor, Tensor]:
        """Hungarian matching, per image.

        Args: as :meth:`cost`; requires ``N_s >= N_t``.

        Returns:
            tuple[Tensor, Tensor]: ``pred_inds`` (B, N_t) long, the student
            prediction matched to every teacher proposal, and ``cost`` (B,)
            the total matching cost of every image.
        """
        num_t, num_s = tgt_boxes.size(1), pred_boxes.size(1)
        if num_s < num_t:
            raise ValueError(
                f'ProposalHungarianMatcher: {num_t} teacher proposals cannot '
                f'be matched one-to-one to {num_s} student predictions.')
        cost = self.cost(tgt_embeds, tgt_boxes, pred_embeds, pred_boxes)
        if not torch.isfinite(cost).all():
            raise FloatingPointError(
                'ProposalHungarianMatcher: the matching cost has NaN/Inf '
                'entries (the network outputs diverged).')
        cost_np = cost.cpu().numpy()
        inds = np.empty(cost_np.shape[:2], dtype=np.int64)
        totals = np.empty(cost_np.shape[0], dtype=np.float64)
        for b, c in enumerate(cost_np):  # the assignment itself, per image
            rows, cols = linear_sum_assignment(c)
            inds[b, rows] = cols
            totals[b] = c[rows, cols].sum()
        return (torch.from_numpy(inds).to(tgt_boxes.device),
                torch.from_numpy(totals).to(cost))
