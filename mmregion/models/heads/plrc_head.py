"""PLRC's objective: image MoCo v2, point-level region contrast and
point-affinity distillation (Bai et al., CVPR 2022).

Official code facebookresearch/PLRC @5fbd1cb (``PLRC/models/builder.py``,
``plrc_loss.py``); ``docs/fidelity.md`` (PLRC) lists what follows the release.
:class:`PLRC` runs the encoders, the teacher, the queue and the point
sampling and hands this head features and targets. Per direction ``(s, t)``
(online view ``s``, teacher view ``t``; with ``symmetric=True`` every term is
the mean of both directions):

1. **Image-level MoCo v2** (``loss_img``, :class:`ImageContrastHead`, shared
   with CCOP): online embedding of view ``s`` vs the teacher's of view ``t``
   and the queue (65536 keys, tau 0.2).
2. **Point-level region contrast** (``loss_point``,
   :class:`PointInfoNCELoss`): ``P`` points per region at the same image
   location in views ``s`` and ``t``; the online points of ``s`` and the
   teacher points of ``t`` form one SupCon set (positives ``P(a)``: the other
   points of the same region in both views; every other point a negative)::

       l_a = -(tau / tau_base) / |P(a)| * sum_{p in P(a)} log(
             exp(z_a . z_p / tau) / sum_{c != a} exp(z_a . z_c / tau))

3. **Point-affinity distillation** (``loss_distill``,
   :class:`PointAffinityDistillationLoss`): per-location DINO features ``f``
   and prototype logits on the C5 grid, bilinearly upsampled to ``S x S``
   (``distill_size``, 56 officially). Cell ``i`` of the student view ``s``
   pairs with every cell ``j`` of the target view ``d`` whose centre lies
   within ``distill_pos_ratio`` (0.5) times the larger cell diagonal
   (:func:`dense_cell_pairs`, the release's ``overlap()``). With ``R`` the
   teacher features of the ``S*S`` cells of the reference view ``t``::

       s_i = [affinity_scale * f_s(i) . R, logits_s(i)]
       t_j = [affinity_scale * f'_d(j) . R, logits'_d(j)]
       l_ij = -sum softmax((t_j - c) / tau_t) * log_softmax(s_i / tau_s)

   the mean over the pairs of the batch (``num_distill_points=None``, the
   release; an int keeps that many random pairs per image). Upsampling is
   linear, so the terms are exact without the dense ``S x S`` maps
   (:func:`read_upsampled_rows`, :func:`upsampled_affinity`).

Each loss is built from its config key as ``self.<key>_module``. The paper
weighs image 0.7, point 0.3, distillation 0.3; the official ``main_plrc.py``
unpacks two losses in swapped order and so trains ``1.0 * L_img + 0.21 *
L_point + 0.21 * L_distill`` (set those weights to reproduce the release).
"""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmregion.registry import MODELS
from ..utils.cell_pairs import (dense_cell_pairs, keep_random_pairs,
                                pair_frame_scale, unique_cells)
from ..utils.dense_ops import read_upsampled_rows, upsampled_affinity
from .image_contrast_head import ImageContrastHead

__all__ = ['PLRCHead', 'DistillInputs']


class DistillInputs(NamedTuple):
    """One direction of the distillation: per-location DINO outputs on the
    C5 grid, ``(B, Cb, h, w)`` L2-normalised features and ``(B, Np, h, w)``
    prototype logits: online of the student view, teacher of the target
    view, teacher features of the affinity reference view (the target view
    in the two-view form); ``views``: ``(student, target)`` indices into
    ``view_affine``."""
    student_feat: Tensor
    student_logits: Tensor
    target_feat: Tensor
    target_logits: Tensor
    reference_feat: Tensor
    views: Tuple[int, int]


@MODELS.register_module()
class PLRCHead(ImageContrastHead):
    """The three PLRC losses (module docstring).

    Args:
        num_prototypes (int): prototypes of the DINO projection (the
            algorithm's ``dino_neck``); the default ``out_dim`` of
            ``loss_distill`` is ``distill_size**2 + num_prototypes``.
        loss_img (dict): image-level :class:`InfoNCELoss` config.
        loss_point (dict): :class:`PointInfoNCELoss` config.
        loss_distill (dict): :class:`PointAffinityDistillationLoss` config.
        distill_size (int): side of the dense grid of the distillation.
            Defaults to 56 (``mask_size`` in the official code).
        distill_pos_ratio (float): pairing threshold in cell diagonals.
            Defaults to 0.5 (``overlap(pos_ratio=0.5)``).
        distill_pair_frame (str): where the pairing distances are measured
            (:func:`dense_cell_pairs`): ``'normalized'`` (the release:
            original coordinates divided by the image's ``(W - 1, H - 1)``,
            needs the ``ori_shape`` metainfo) or ``'pixels'`` (original
            pixels, isotropic). Defaults to ``'normalized'``.
        affinity_scale (float): multiplier of the point affinities. Defaults
            to 1/128 (official ``out_pos_feat_f / 128``).
        num_distill_points (int, optional): distil at most this many random
            cell pairs per image and direction. Defaults to None (all pairs,
            as released).
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 num_prototypes: int,
                 loss_img: dict = dict(
                     type='InfoNCELoss', temperature=0.2, loss_weight=1.0),
                 loss_point: dict = dict(
                     type='PointInfoNCELoss',
                     temperature=0.2,
                     base_temperature=0.07,
                     loss_weight=0.3),
                 loss_distill: dict = dict(
                     type='PointAffinityDistillationLoss', loss_weight=0.3),
                 distill_size: int = 56,
                 distill_pos_ratio: float = 0.5,
                 distill_pair_frame: str = 'normalized',
                 affinity_scale: float = 1. / 128,
                 num_distill_points: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_img=loss_img, init_cfg=init_cfg)
        if num_distill_points is not None and num_distill_points < 1:
            raise ValueError('PLRCHead: num_distill_points must be >= 1 or '
                             f'None, got {num_distill_points}')
        if distill_pair_frame not in ('normalized', 'pixels'):
            raise ValueError('PLRCHead: distill_pair_frame must be '
                             f'"normalized" or "pixels", got '
                             f'"{distill_pair_frame}"')
        self.loss_point_module = MODELS.build(loss_point)
        loss_distill = dict(loss_distill)
        loss_distill.setdefault('out_dim', distill_size**2 + num_prototypes)
        self.loss_distill_module = MODELS.build(loss_distill)
        self.num_prototypes = num_prototypes
        self.distill_size = distill_size
        self.distill_pos_ratio = distill_pos_ratio
        self.distill_pair_frame = distill_pair_frame
        self.affinity_scale = affinity_scale
        self.num_distill_points = num_distill_points

    def point_contrast_loss(self, q: Sequence[Tensor], k: Sequence[Tensor],
                            valid: Tensor) -> Tensor:
        """SupCon over the online points of one view + the teacher points of
        the other, averaged over the directions.

        Args:
            q (Sequence[Tensor]): per direction, online ``(B, K, P, D)``.
            k (Sequence[Tensor]): per direction, teacher ``(B, K, P, D)``.
            valid (Tensor): ``(B, K)`` bool.

        Returns:
            Tensor: scalar.
        """
        B, K, P, D = q[0].shape
        labels = torch.arange(B * K, device=valid.device).view(B, K, 1, 1)
        labels = labels.expand(B, K, 2, P).reshape(-1)
        pvalid = valid[:, :, None, None].expand(B, K, 2, P).reshape(-1)
        view_ids = torch.arange(
            2, device=valid.device).view(1, 1, 2, 1).expand(B, K, 2,
                                                            P).reshape(-1)
        losses = []
        for q_d, k_d in zip(q, k):
            feats = torch.stack([q_d, k_d.detach()], 2).reshape(-1, D)
            losses.append(
                self.loss_point_module(
                    feats, labels, pvalid, view_ids=view_ids))
        return sum(losses) / len(losses)

    def _cell_vectors(self, feat: Tensor, logits: Tensor, cells: Tensor,
                      ref: Tensor) -> Tensor:
        """``[affinity_scale * f(i) . up(R), logits(i)]`` of the cells
        ``(B, U)``: ``(B, U, S*S + Np)`` from ``feat`` ``(B, Cb, h, w)``,
        ``logits`` ``(B, Np, h, w)`` and the reference ``ref``
        ``(B, Cb, h, w)``."""
        S = self.distill_size
        rows = read_upsampled_rows(feat, cells, S)  # (B, U, Cb)
        return torch.cat([
            upsampled_affinity(rows, ref, S) * self.affinity_scale,
            read_upsampled_rows(logits, cells, S)
        ], -1)

    def distill_loss(self,
                     distill: Sequence[DistillInputs],
                     view_affine: Tensor,
                     img_shape: Tuple[int, int],
                     ori_shape: Optional[Tensor] = None) -> Tensor:
        """Point-affinity distillation, all directions in one loss call.

        Every pair of cells of :func:`dense_cell_pairs` is a term (a student
        cell with several target cells in reach is distilled towards each of
        them, as the release); the loss is the mean over the pairs of the
        batch. Each distinct cell's vector is computed once (``(U, D)``, not
        one row per pair) and the loss sums over the pairs through their
        row indices (``pair_index``).

        Args:
            distill (Sequence[DistillInputs]): per direction.
            view_affine (Tensor): ``(B, V, 4)`` ``[sx, tx, sy, ty]``.
            img_shape (tuple[int, int]): ``(H, W)`` of the views.
            ori_shape (Tensor, optional): ``(B, 2)`` original ``(h, w)``,
                needed by ``distill_pair_frame='normalized'``.

        Returns:
            Tensor: scalar.
        """
        S = self.distill_size
        students, targets, pairs = [], [], []
        num_s = num_t = 0  # rows before this direction's
        scale = pair_frame_scale(self.distill_pair_frame, ori_shape,
                                 view_affine.size(0))
        for d in distill:
            idx_s, idx_t, ok = keep_random_pairs(
                *dense_cell_pairs(view_affine, img_shape, S, *d.views,
                                  self.distill_pos_ratio, scale),
                self.num_distill_points)
            cells_s, pos_s = unique_cells(idx_s, ok, S * S)  # (B, Us)
            cells_t, pos_t = unique_cells(idx_t, ok, S * S)  # (B, Ut)
            ref = d.reference_feat.detach()
            s_vec = self._cell_vectors(d.student_feat, d.student_logits,
                                       cells_s, ref)
            with torch.no_grad():
                t_vec = self._cell_vectors(d.target_feat.detach(),
                                           d.target_logits, cells_t, ref)
            b, m = ok.nonzero(as_tuple=True)  # the real pairs
            pairs.append(
                torch.stack([
                    num_s + b * cells_s.size(1) + pos_s[b, m],
                    num_t + b * cells_t.size(1) + pos_t[b, m]
                ]))
            students.append(s_vec.flatten(0, 1))
            targets.append(t_vec.flatten(0, 1))
            num_s += students[-1].size(0)
            num_t += targets[-1].size(0)
        cat = (lambda x: x[0]) if len(distill) == 1 else torch.cat
        return self.loss_distill_module(
            cat(students), cat(targets), pair_index=torch.cat(pairs, 1))

    def loss(self,
             point_q: Sequence[Tensor],
             point_k: Sequence[Tensor],
             point_valid: Tensor,
             distill: Sequence[DistillInputs],
             view_affine: Tensor,
             img_shape: Tuple[int, int],
             ori_shape: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The two region-level PLRC losses of one step, each averaged over
        the directions (``loss_img`` is :meth:`image_loss`, called by the
        algorithm with its queue).

        Args:
            point_q, point_k (Sequence[Tensor]): per direction, online and
                teacher point embeddings ``(B, K, P, D)``.
            point_valid (Tensor): ``(B, K)`` bool, the real regions.
            distill (Sequence[DistillInputs]): per direction.
            view_affine (Tensor): ``(B, V, 4)``.
            img_shape (tuple[int, int]): ``(H, W)``.
            ori_shape (Tensor, optional): ``(B, 2)`` original ``(h, w)``.

        Returns:
            dict[str, Tensor]: ``loss_point``, ``loss_distill``.
        """
        return dict(
            loss_point=self.point_contrast_loss(point_q, point_k, point_valid),
            loss_distill=self.distill_loss(distill, view_affine, img_shape,
                                           ori_shape))
