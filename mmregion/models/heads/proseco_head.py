"""ProSeCo's objective: proposal-contrastive learning (Bouniot et al., ICLR
2023; the official code is not public, its open choices are options, see
``docs/fidelity.md``).

Per image, the teacher's proposals (all its N queries, or its top-k by
objectness) are Hungarian-matched to the student's predictions
(:class:`ProposalHungarianMatcher`: feature similarity + L1 + GIoU), and
:class:`LocSCELoss` contrasts each matched student embedding with the
teacher embeddings of the batch, the teacher boxes' IoU deciding which
proposals count as positives. The localisation loss on the selective-search
boxes is the detector head's own (``loss_by_feat``), run by the algorithm.
"""
from typing import Dict, Optional

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS, TASK_UTILS
from ..utils.loss_guard import nonfinite_terms

__all__ = ['ProSeCoHead']


@MODELS.register_module()
class ProSeCoHead(BaseModule):
    """Teacher top-k, proposal matching and the LocSCE contrast of ProSeCo.

    Its algorithm (:class:`ProSeCo`) keeps an EMA teacher for it
    (``with_teacher``) and passes the student's and the teacher's last
    decoder layer outputs.

    Args:
        matcher (dict): Config of the teacher->student proposal matcher.
            Defaults to ``ProposalHungarianMatcher``.
        loss (dict): Contrastive loss (``LocSCELoss`` or any loss called as
            ``loss(student (B, N_t, D), teacher (B, N_t, D), boxes (B, N_t,
            4) xyxy)``). Defaults to ``LocSCELoss``.
        num_proposals (int, optional): Keep only the teacher's top-k queries
            (by objectness) as proposals; None keeps all N.
        init_cfg (dict, optional): Initialisation config.
    """
    with_teacher = True

    def __init__(self,
                 matcher: dict = dict(type='ProposalHungarianMatcher'),
                 loss: dict = dict(type='LocSCELoss'),
                 num_proposals: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.matcher = TASK_UTILS.build(matcher)
        self.loss_module = MODELS.build(loss)
        self.num_proposals = num_proposals

    def loss(self, s_embeds: Tensor, s_boxes: Tensor, t_scores: Tensor,
             t_embeds: Tensor, t_boxes: Tensor) -> Dict[str, Tensor]:
        """Match the teacher proposals to the student and contrast them.

        Args:
            s_embeds (Tensor): (B, N, D) student object embeddings.
            s_boxes (Tensor): (B, N, 4) student boxes (normalised cxcywh,
                last decoder layer).
            t_scores (Tensor): (B, N) teacher objectness logits.
            t_embeds (Tensor): (B, N, D) teacher embeddings (no grad).
            t_boxes (Tensor): (B, N, 4) teacher boxes (normalised cxcywh).

        Returns:
            dict[str, Tensor]: ``loss_contrast``, or the
            ``loss_nonfinite_*`` terms of :func:`nonfinite_terms` when the
            teacher's outputs are not finite.
        """
        with torch.no_grad():
            k = self.num_proposals
            if k is not None and k < t_boxes.size(1):
                top = t_scores.topk(k, dim=1).indices  # (B, k)
                t_boxes = t_boxes.gather(1, top[..., None].expand(-1, -1, 4))
                t_embeds = t_embeds.gather(
                    1, top[..., None].expand(-1, -1, t_embeds.size(-1)))
            bad = nonfinite_terms(
                teacher_embeds=t_embeds, teacher_bbox_preds=t_boxes)
        if bad:
            # keep the student in the graph (DDP, plain optim wrappers)
            return {k: v + s_embeds.sum() * 0 for k, v in bad.items()}
        with torch.no_grad():
            # (B, N_t): the student query matched to each teacher proposal
            pred_inds, _ = self.matcher.match(t_embeds, t_boxes,
                                              s_embeds.detach(),
                                              s_boxes.detach())
        matched = s_embeds.gather(
            1, pred_inds[..., None].expand(-1, -1, s_embeds.size(-1)))
        return dict(
            loss_contrast=self.loss_module(matched, t_embeds,
                                           bbox_cxcywh_to_xyxy(t_boxes)))
