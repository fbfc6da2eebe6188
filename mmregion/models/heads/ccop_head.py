"""CCOP's objective: what CCOP optimises, in one place.

CCOP (Yang, Huang, Crowley, arXiv 2111.13651; github ChenhongyiYang/CCOP,
``openselfsup/models/ccop.py``) sums three terms, each with its
``loss_weight``:

- ``loss_img``: image-level MoCo v2 InfoNCE (view 1 query, view 2 key, the
  image queue), the term shared with PLRC (:class:`ImageContrastHead`,
  which this head extends).
- ``loss_region`` (here): inter-image object-level InfoNCE. Query = online
  embedding of region r in view 1; positive = the *hardest* valid jittered
  momentum key of r in view 2 (lowest similarity to the query among the
  candidates of :class:`CurriculumBoxJitter` whose IoU with the box is >=
  the current threshold; the un-jittered box is always a candidate, the
  last one), see :meth:`CCOPHead.select_positives`; negatives = the region
  queue.
- ``loss_intra`` (here): intra-image discrimination (hinge, margin 0.4)
  between the online region embeddings and the un-jittered momentum keys of
  the same image, over pairs with IoU < 0.05.

Each term's loss is built from its config key (``loss_img``,
``loss_region``, ``loss_intra``) as ``self.<key>_module`` (mmpretrain's
``loss`` -> ``loss_module``); the algorithm :class:`CCOP` runs the encoders,
the queues and the box jitter and hands the head features and targets.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from mmregion.registry import MODELS
from .image_contrast_head import ImageContrastHead

__all__ = ['CCOPHead']


@MODELS.register_module()
class CCOPHead(ImageContrastHead):
    """The CCOP objective: image-level MoCo v2, hardest-positive region
    InfoNCE and intra-image discrimination (module docstring).

    Regions arrive flattened over the batch: the N rows of ``query`` are the
    real regions in the order of ``valid.nonzero()`` (image, then region).

    Args:
        loss_img (dict): Image-level InfoNCE config (tau 0.2, CCOP).
        loss_region (dict): Region InfoNCE config (tau 0.2, CCOP).
        loss_intra (dict): Intra-image loss config (margin 0.4, IoU 0.05).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 loss_img: dict = dict(
                     type='InfoNCELoss', temperature=0.2, loss_weight=1.0),
                 loss_region: dict = dict(
                     type='InfoNCELoss', temperature=0.2, loss_weight=1.0),
                 loss_intra: dict = dict(
                     type='IntraImageDiscriminationLoss',
                     margin=0.4,
                     neg_iou_thr=0.05,
                     loss_weight=1.0),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_img=loss_img, init_cfg=init_cfg)
        self.loss_region_module = MODELS.build(loss_region)
        self.loss_intra_module = MODELS.build(loss_intra)

    @staticmethod
    @torch.no_grad()
    def select_positives(query: Tensor, key_cands: Tensor,
                         cand_valid: Tensor) -> Tuple[Tensor, Tensor]:
        """CCOP's hardest positive: per region, the valid candidate key least
        similar to its query.

        Args:
            query (Tensor): (N, D) L2-normalised online region embeddings.
            key_cands (Tensor): (N, J+1, D) L2-normalised momentum
                embeddings of the candidate boxes, the un-jittered box last
                (rows of invalid candidates are ignored).
            cand_valid (Tensor): (N, J+1) bool, IoU of the candidate with
                its box >= the current threshold (the last is always True).

        Returns:
            tuple[Tensor, Tensor]: ``key_pos`` (N, D) the positives and
            ``key_orig`` (N, D) the un-jittered keys.
        """
        sim = torch.einsum('nd,njd->nj', query.detach(), key_cands)
        sim = sim.masked_fill(~cand_valid, float('inf'))
        hardest = sim.argmin(dim=1)
        key_pos = key_cands[torch.arange(key_cands.shape[0]), hardest]
        return key_pos, key_cands[:, -1]

    def loss(self, query: Tensor, key_pos: Tensor, key_orig: Tensor,
             queue: Tensor, key_boxes: Tensor,
             valid: Tensor) -> Dict[str, Tensor]:
        """The two region-level CCOP losses (``loss_img`` is
        :meth:`image_loss`, called by the algorithm with its queue).

        Args:
            query (Tensor): (N, D) online region embeddings (view 1).
            key_pos (Tensor): (N, D) positives from :meth:`select_positives`.
            key_orig (Tensor): (N, D) un-jittered momentum keys (view 2).
            queue (Tensor): (L, D) region queue (negatives).
            key_boxes (Tensor): (B, K, 4) view-2 xyxy boxes, zero-padded.
            valid (Tensor): (B, K) bool, False for padding; ``valid.sum()``
                is N.

        Returns:
            dict[str, Tensor]: ``loss_region`` and ``loss_intra``.
        """
        losses = dict(
            loss_region=self.loss_region_module(query, key_pos, queue))
        # back to (B, K, D) with zero padding for the intra-image loss
        b_idx, r_idx = torch.nonzero(valid, as_tuple=True)
        q_pad = query.new_zeros(valid.shape + query.shape[1:])
        q_pad = q_pad.index_put((b_idx, r_idx), query)
        k_pad = key_orig.new_zeros(q_pad.shape).index_put((b_idx, r_idx),
                                                          key_orig)
        losses['loss_intra'] = self.loss_intra_module(q_pad, k_pad, key_boxes,
                                                      valid)
        return losses
