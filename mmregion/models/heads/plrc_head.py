"""PLRC's objective: image MoCo v2, point-level region contrast and
point-affinity distillation (Bai et al., CVPR 2022).

Official code facebookresearch/PLRC @5fbd1cb (``PLRC/models/builder.py``,
``plrc_loss.py``); ``docs/fidelity.md`` (PLRC) lists what follows the release.
:class:`PLRC` runs the encoders and calls :meth:`PLRCHead.loss`. Per direction
``(s, t)`` (online view ``s``, teacher view ``t``; see :class:`PLRC` for the
views):

1. **Image-level MoCo v2** (queue 65536, tau 0.2): the online embedding of
   view 0 against the teacher's of view 1 and the queue (``loss_img``).
2. **Point-level region contrast**: ``P`` points per region are sampled at
   the same image location in views ``s`` and ``t``
   (:meth:`sample_points`, :class:`RegionPointSampler`). The online points of
   view ``s`` and the teacher points of view ``t`` form one set contrasted
   with :class:`PointInfoNCELoss` (SupCon: positives = the other points of
   the same region in both views). ``regions_per_image=1`` (the release)
   contrasts one random common region per image, whose negatives are the
   points of the other images; ``None`` (or ``k > 1``) contrasts every (or
   ``k``) common region(s), the other regions of the same image being
   negatives too.
3. **Point-affinity distillation**: per-location DINO features and prototype
   logits on the C5 grid, bilinearly upsampled to ``distill_size x
   distill_size`` (56 officially). A cell ``i`` of the student view ``s`` is
   paired with the cell ``j`` of the target view ``d`` holding the same image
   location (:func:`match_dense_cells`, ``overlap()`` of the official
   ``utils.py``). The student vector of ``i`` is ``[affinity_scale * f_s(i) .
   R, logits_s(i)]`` and the target ``[affinity_scale * f'_d(j) . R,
   logits'_d(j)]``, ``R`` being the teacher features of all ``S*S`` cells of
   the reference view ``t``. The upsampling is linear, so the loss is exact
   without the dense ``S x S`` maps (:func:`read_upsampled_rows`,
   :func:`upsampled_affinity`). All paired cells are distilled
   (``num_distill_points=None``, the release: the mean over all pairs of the
   batch); an integer keeps that many random paired cells per image (an
   unbiased estimate of each image's mean, every image weighed alike).

Loss weights are the ``loss_weight`` of each loss. The paper's intended
weighting is image 0.7, point 0.3, distillation 0.3. The official
``main_plrc.py`` unpacks the two returned losses in swapped order, so it
effectively trains ``1.0 * L_img + 0.21 * L_point + 0.21 * L_distill``;
set those weights to reproduce the release.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS, TASK_UTILS
from mmregion.structures import map_xy
from ..utils.dense_ops import read_upsampled_rows, upsampled_affinity

__all__ = [
    'PLRCHead', 'match_dense_cells', 'select_regions', 'legacy_head_keys_hook'
]


def match_dense_cells(view_affine: Tensor,
                      img_shape: Tuple[int, int],
                      size: int,
                      src: int,
                      dst: int,
                      pos_ratio: float = 0.5) -> Tuple[Tensor, Tensor]:
    """Cells of view ``dst`` that hold the image location of each ``src`` cell.

    Both views are divided into ``size x size`` cells. The centre of every
    cell of ``src`` is mapped to original-image coordinates and into ``dst``;
    the cell of ``dst`` containing it is its match, kept if it lies inside
    ``dst`` and the two cell centres (in original pixels) are closer than
    ``pos_ratio`` times the larger cell diagonal.

    Args:
        view_affine (Tensor): ``(B, V, 4)`` ``[sx, tx, sy, ty]``.
        img_shape (tuple[int, int]): ``(H, W)`` of the views.
        size (int): cells per side.
        src (int): source view index.
        dst (int): destination view index.
        pos_ratio (float): distance threshold in cell diagonals.

    Returns:
        tuple[Tensor, Tensor]: ``(B, size*size)`` long index of the matched
        ``dst`` cell (row-major) and ``(B, size*size)`` bool match mask.
    """
    H, W = img_shape
    aff = view_affine.float()
    cw, ch = W / size, H / size
    ar = torch.arange(size, device=aff.device, dtype=torch.float32) + 0.5
    cy, cx = torch.meshgrid(ar * ch, ar * cw, indexing='ij')
    cx, cy = cx.reshape(1, -1), cy.reshape(1, -1)  # (1, S*S) src pixels
    a_s, a_d = aff[:, src, None, :], aff[:, dst, None, :]  # (B, 1, 4)
    ox, oy = map_xy(cx, cy, a_s, inverse=True)  # original pixels
    dx, dy = map_xy(ox, oy, a_d)  # dst pixels
    inside = (dx >= 0) & (dx < W) & (dy >= 0) & (dy < H)
    jx = (dx / cw).floor().clamp(0, size - 1)
    jy = (dy / ch).floor().clamp(0, size - 1)
    # centre of the matched dst cell, back in original pixels
    mx, my = map_xy((jx + 0.5) * cw, (jy + 0.5) * ch, a_d, inverse=True)
    dist = torch.sqrt((mx - ox)**2 + (my - oy)**2)
    diag_s = torch.sqrt((cw / a_s[..., 0])**2 + (ch / a_s[..., 2])**2)
    diag_d = torch.sqrt((cw / a_d[..., 0])**2 + (ch / a_d[..., 2])**2)
    ok = inside & (dist < pos_ratio * torch.maximum(diag_s, diag_d))
    return (jy * size + jx).long(), ok


def select_regions(boxes: Tensor, valid: Tensor,
                   max_regions: Optional[int]) -> Tuple[Tensor, Tensor]:
    """Keep at most ``max_regions`` random valid regions per image.

    Args:
        boxes (Tensor): ``(B, V, K, 4)``.
        valid (Tensor): ``(B, K)`` bool.
        max_regions (int, optional): None keeps all.

    Returns:
        tuple[Tensor, Tensor]: ``(B, V, K', 4)`` and ``(B, K')``.
    """
    K = valid.size(1)
    if max_regions is None or K <= max_regions:
        return boxes, valid
    score = torch.rand(valid.shape, device=valid.device) + valid.float()
    idx = score.topk(max_regions, dim=1).indices  # (B, K')
    valid = valid.gather(1, idx)
    boxes = boxes.gather(
        2, idx[:, None, :, None].expand(-1, boxes.size(1), -1, 4))
    return boxes, valid


@MODELS.register_module()
class PLRCHead(BaseModule):
    """The three PLRC losses (module docstring) and the region pairing.

    Args:
        num_prototypes (int): prototypes of the DINO head; the default
            ``out_dim`` of ``loss_distill`` is ``distill_size**2 +
            num_prototypes``.
        point_sampler (dict): :class:`RegionPointSampler` config.
        loss_img (dict): image-level :class:`InfoNCELoss` config.
        loss_point (dict): :class:`PointInfoNCELoss` config.
        loss_distill (dict): :class:`PointAffinityDistillationLoss` config.
        distill_size (int): side of the dense grid of the distillation.
            Defaults to 56 (``mask_size`` in the official code).
        distill_pos_ratio (float): pairing threshold in cell diagonals.
            Defaults to 0.5 (``overlap(pos_ratio=0.5)``).
        affinity_scale (float): multiplier of the point affinities. Defaults
            to 1/128 (official ``out_pos_feat_f / 128``).
        num_distill_points (int, optional): distil at most this many random
            paired cells per image and direction. Defaults to None (all
            paired cells, as released).
        regions_per_image (int, optional): common regions contrasted per
            image, drawn at random among the valid ones. Defaults to 1 (the
            release); None: all of them.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 num_prototypes: int,
                 point_sampler: dict = dict(
                     type='RegionPointSampler', num_points=16),
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
                 affinity_scale: float = 1. / 128,
                 num_distill_points: Optional[int] = None,
                 regions_per_image: Optional[int] = 1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_distill_points is not None and num_distill_points < 1:
            raise ValueError('PLRC: num_distill_points must be >= 1 or None, '
                             f'got {num_distill_points}')
        if regions_per_image is not None and regions_per_image < 1:
            raise ValueError('PLRC: regions_per_image must be >= 1 or None, '
                             f'got {regions_per_image}')
        self.point_sampler = TASK_UTILS.build(point_sampler)
        self.loss_img = MODELS.build(loss_img)
        self.loss_point = MODELS.build(loss_point)
        loss_distill = dict(loss_distill)
        loss_distill.setdefault('out_dim', distill_size**2 + num_prototypes)
        self.loss_distill = MODELS.build(loss_distill)
        self.distill_size = distill_size
        self.distill_pos_ratio = distill_pos_ratio
        self.affinity_scale = affinity_scale
        self.num_distill_points = num_distill_points
        self.regions_per_image = regions_per_image

    def sample_points(self, boxes: Tensor, valid: Tensor,
                      view_affine: Tensor) -> Tuple[Tensor, Tensor]:
        """Pick the contrasted regions and sample their points.

        Args:
            boxes (Tensor): ``(B, 2, K, 4)`` boxes of views 0 and 1.
            valid (Tensor): ``(B, K)`` bool.
            view_affine (Tensor): ``(B, 2, 4)`` of views 0 and 1.

        Returns:
            tuple[Tensor, Tensor]: points ``(B, 2, K', P, 2)`` xy in each
            view's pixels and valid ``(B, K')``.
        """
        boxes, valid = select_regions(boxes, valid, self.regions_per_image)
        return self.point_sampler.sample(boxes, valid, view_affine)

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
                self.loss_point(feats, labels, pvalid, view_ids=view_ids))
        return sum(losses) / len(losses)

    def _distill_rows(self, ok: Tensor) -> Tensor:
        """Cells of the student view to distil.

        Args:
            ok (Tensor): ``(B, S*S)`` bool, cells with a pair.

        Returns:
            Tensor: ``(B, M)`` long indices, the paired cells first: all of
            them (``M`` = the largest paired count of the batch) or
            ``M = num_distill_points`` random ones. Rows past an image's
            count are unpaired and get weight 0.
        """
        M = max(int(ok.sum(1).max()), 1)
        score = ok.float()
        if self.num_distill_points is not None and \
                self.num_distill_points < M:
            M = self.num_distill_points
            score = score + torch.rand(ok.shape, device=ok.device)
        return score.topk(M, dim=1).indices

    def _distill_vector(self, enc: Dict[str, Tensor], idx: Tensor,
                        ref: Tensor) -> Tensor:
        """``[affinity_scale * f(i) . up(R), logits(i)]`` of cells ``idx``:
        ``(B, M, S*S + Np)`` from ``dino_feat`` ``(B, Cb, h, w)`` and
        ``dino_logits`` ``(B, Np, h, w)`` of ``enc``, ``ref`` ``(B, Cb, h,
        w)``."""
        S = self.distill_size
        rows = read_upsampled_rows(enc['dino_feat'], idx, S)  # (B, M, Cb)
        return torch.cat([
            upsampled_affinity(rows, ref, S) * self.affinity_scale,
            read_upsampled_rows(enc['dino_logits'], idx, S)
        ], -1)

    def distill_loss(
            self,
            online: Sequence[Dict[str, Tensor]],
            target: Sequence[Dict[str, Tensor]],
            pairs: Sequence[Tuple[int, int]],
            view_affine: Tensor,
            img_shape: Tuple[int, int],
            reference: Optional[Sequence[Dict[str, Tensor]]] = None) -> Tensor:
        """Point-affinity distillation, all directions in one loss call.

        Args:
            online (Sequence[dict]): per direction, the online (student)
                view's ``dino_feat`` ``(B, Cb, h, w)`` and ``dino_logits``
                ``(B, Np, h, w)``.
            target (Sequence[dict]): per direction, the teacher's of the
                target view (view 0' with three views).
            pairs (Sequence[tuple[int, int]]): per direction, the
                ``(student, target)`` view indices into ``view_affine``.
            view_affine (Tensor): ``(B, V, 4)``.
            img_shape (tuple[int, int]): ``(H, W)``.
            reference (Sequence[dict], optional): per direction, the
                teacher's of the affinity reference view (view 1).
                Defaults to ``target`` (the two-view form).

        Returns:
            Tensor: scalar.
        """
        students, targets, weights = [], [], []
        reference = target if reference is None else reference
        for on, te, rf, (s, d) in zip(online, target, reference, pairs):
            idx_t, ok = match_dense_cells(view_affine, img_shape,
                                          self.distill_size, s, d,
                                          self.distill_pos_ratio)
            idx_s = self._distill_rows(ok)  # (B, M)
            ok = ok.gather(1, idx_s)
            idx_t = idx_t.gather(1, idx_s)
            ref = rf['dino_feat'].detach()
            s_vec = self._distill_vector(on, idx_s, ref)
            with torch.no_grad():
                t_vec = self._distill_vector(
                    dict(te, dino_feat=te['dino_feat'].detach()), idx_t, ref)
            students.append(s_vec.flatten(0, 1))
            targets.append(t_vec.flatten(0, 1))
            weights.append(ok.flatten().to(s_vec.dtype))
        if len(students) == 1:  # one direction: no copy of (B*M, D)
            return self.loss_distill(students[0], targets[0], weights[0])
        return self.loss_distill(
            torch.cat(students), torch.cat(targets), torch.cat(weights))

    def loss(self, img_q: Tensor, img_k: Tensor, img_queue: Tensor,
             point_q: Sequence[Tensor], point_k: Sequence[Tensor],
             valid: Tensor, online: Sequence[Dict[str, Tensor]],
             target: Sequence[Dict[str,
                                   Tensor]], reference: Sequence[Dict[str,
                                                                      Tensor]],
             pairs: Sequence[Tuple[int, int]], view_affine: Tensor,
             img_shape: Tuple[int, int]) -> Dict[str, Tensor]:
        """The PLRC losses of one step.

        Args:
            img_q (Tensor): ``(B, D)`` online image embedding (view 0).
            img_k (Tensor): ``(B, D)`` teacher image embedding (view 1).
            img_queue (Tensor): ``(L, D)`` queued teacher keys.
            point_q, point_k (Sequence[Tensor]): per direction, online and
                teacher point embeddings ``(B, K, P, D)``.
            valid (Tensor): ``(B, K)`` bool.
            online, target, reference, pairs: per direction, see
                :meth:`distill_loss`.
            view_affine (Tensor): ``(B, V, 4)``.
            img_shape (tuple[int, int]): ``(H, W)``.

        Returns:
            dict[str, Tensor]: ``loss_img``, ``loss_point``, ``loss_distill``.
        """
        return dict(
            loss_img=self.loss_img(img_q, img_k, img_queue),
            loss_point=self.point_contrast_loss(point_q, point_k, valid),
            loss_distill=self.distill_loss(online, target, pairs, view_affine,
                                           img_shape, reference))


def legacy_head_keys_hook(state_dict: dict, prefix: str, *args) -> None:
    """Load-state-dict pre-hook of :class:`PLRC`: checkpoints saved before
    :class:`PLRCHead` (and the official converter's output) hold its losses'
    state at the top level, ``loss_distill.center``; it is now
    ``head.loss_distill.center``."""
    for name in ('loss_img.', 'loss_point.', 'loss_distill.'):
        for key in [k for k in state_dict if k.startswith(prefix + name)]:
            new = prefix + 'head.' + key[len(prefix):]
            state_dict.setdefault(new, state_dict.pop(key))
