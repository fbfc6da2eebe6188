"""PLRC's objective: image MoCo v2, point-level region contrast and
point-affinity distillation (Bai et al., CVPR 2022).

Official code facebookresearch/PLRC @5fbd1cb (``PLRC/models/builder.py``,
``plrc_loss.py``); ``docs/fidelity.md`` (PLRC) lists what follows the release.
:class:`PLRC` runs the encoders and calls :meth:`PLRCHead.loss`. Per direction
``(s, t)`` (online view ``s``, teacher view ``t``; see :class:`PLRC` for the
views):

1. **Image-level MoCo v2** (queue 65536, tau 0.2): the online embedding of
   view ``s`` against the teacher's of view ``t`` and the queue
   (``loss_img``).
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
   paired with every cell ``j`` of the target view ``d`` whose centre lies
   within ``distill_pos_ratio`` (0.5) times the larger cell diagonal of its
   own (:func:`dense_cell_pairs`, ``overlap()`` of the official
   ``utils.py``, in the release's normalised frame). The student vector of
   ``i`` is ``[affinity_scale * f_s(i) . R, logits_s(i)]`` and the target
   ``[affinity_scale * f'_d(j) . R, logits'_d(j)]``, ``R`` being the teacher
   features of all ``S*S`` cells of the reference view ``t``. The upsampling
   is linear, so the loss is exact without the dense ``S x S`` maps
   (:func:`read_upsampled_rows`, :func:`upsampled_affinity`). All pairs are
   distilled (``num_distill_points=None``, the release: the mean over all
   pairs of the batch); an integer keeps that many random pairs per image
   (an unbiased estimate of each image's mean, every image weighed alike).

With ``symmetric=True`` (:class:`PLRC`, two views) every term is the mean of
both directions.

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
from ..utils.dense_ops import read_upsampled_rows, upsampled_affinity

__all__ = [
    'PLRCHead', 'dense_cell_pairs', 'select_regions', 'legacy_head_keys_hook'
]


def _cell_centres(aff: Tensor, size: int, length: int, axis: int) -> Tensor:
    """Centres of the ``size`` cells of a view along one axis, in original
    pixels: ``(B, size)`` from the ``(B, 4)`` affine ``[sx, tx, sy, ty]``."""
    ar = torch.arange(size, device=aff.device, dtype=aff.dtype) + 0.5
    s, t = aff[:, 2 * axis, None], aff[:, 2 * axis + 1, None]
    return (ar[None] * (length / size) - t) / s


def dense_cell_pairs(
        view_affine: Tensor,
        img_shape: Tuple[int, int],
        size: int,
        src: int,
        dst: int,
        pos_ratio: float = 0.5,
        frame_scale: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Every (``src`` cell, ``dst`` cell) pair of the official ``overlap()``.

    Both views are divided into ``size x size`` cells. A cell ``i`` of view
    ``src`` and a cell ``j`` of view ``dst`` are paired when their centres,
    mapped to the original image, are closer than ``pos_ratio`` times the
    larger of the two views' cell diagonals (PLRC ``PLRC/models/utils.py``
    ``overlap()``, used by ``plrc_loss.py`` through ``torch.nonzero``): a
    cell has as many partners as lie within that radius (none, one or
    several). Distances and diagonals are measured in original pixels
    multiplied by ``frame_scale`` per axis; the release works in crop
    coordinates normalised by the original image's ``(W - 1, H - 1)``
    (``datasets/transforms.py``), i.e. ``frame_scale = (1 / (W - 1), 1 /
    (H - 1))``, an anisotropic frame for non-square images.

    The search is separable: per axis only the partners within the radius
    along that axis are candidates (``K_x``, ``K_y`` of them at most), so the
    cost is ``B * size^2 * K_x * K_y``, not ``B * size^4``.

    Args:
        view_affine (Tensor): ``(B, V, 4)`` ``[sx, tx, sy, ty]``.
        img_shape (tuple[int, int]): ``(H, W)`` of the views.
        size (int): cells per side.
        src (int): source (student) view index.
        dst (int): destination (target) view index.
        pos_ratio (float): distance threshold in cell diagonals.
        frame_scale (Tensor, optional): ``(B, 2)`` x and y multipliers of
            original pixels. Defaults to None (original pixels).

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``(B, M)`` long row-major cell
        indices of ``src`` and of ``dst``, and the ``(B, M)`` bool mask of
        the real pairs (``M``: the largest pair count of the batch, at least
        1; an image's pairs come first, ordered by ``src`` cell).
    """
    H, W = img_shape
    aff = view_affine.float()
    B = aff.size(0)
    a_s, a_d = aff[:, src], aff[:, dst]  # (B, 4)
    if frame_scale is None:
        frame_scale = aff.new_ones(B, 2)
    frame_scale = frame_scale.to(aff)
    # cell diagonals in the frame: cell side / |scale of the view|
    diag = [
        torch.sqrt((W / size / a[:, 0] * frame_scale[:, 0])**2 +
                   (H / size / a[:, 2] * frame_scale[:, 1])**2)
        for a in (a_s, a_d)
    ]
    max_diag = torch.maximum(*diag)  # (B, )
    axes = []
    for axis, length in ((0, W), (1, H)):  # x, then y
        c_s = _cell_centres(a_s, size, length, axis) * frame_scale[:, axis,
                                                                   None]
        c_d = _cell_centres(a_d, size, length, axis) * frame_scale[:, axis,
                                                                   None]
        delta = c_s[:, :, None] - c_d[:, None, :]  # (B, S_src, S_dst)
        # candidates along this axis (a margin for the rounding of the
        # exact test below, which decides)
        cand = delta.abs() <= max_diag[:, None, None] * pos_ratio * (1 + 1e-5)
        k = max(int(cand.sum(2).max()), 1)
        part = cand.float().topk(k, dim=2).indices  # (B, S, k)
        axes.append((part, cand.gather(2, part), delta.gather(2, part)))
    (jx, vx, dx), (jy, vy, dy) = axes
    # (B, S_y, S_x, K_y, K_x): src cell (iy, ix), candidate (ky, kx)
    dist = torch.sqrt(dy[:, :, None, :, None]**2 + dx[:, None, :, None, :]**2)
    ok = (
        vy[:, :, None, :, None] & vx[:, None, :, None, :]
        & (dist / max_diag.view(B, 1, 1, 1, 1) < pos_ratio))
    S = size
    Ky, Kx = jy.size(2), jx.size(2)
    ar = torch.arange(S, device=aff.device)
    src_idx = (ar.view(1, S, 1, 1, 1) * S + ar.view(1, 1, S, 1, 1)).expand(
        B, S, S, Ky, Kx)
    dst_idx = jy[:, :, None, :, None] * S + jx[:, None, :, None, :]
    ok, src_idx, dst_idx = (t.reshape(B, -1) for t in (ok, src_idx, dst_idx))
    M = max(int(ok.sum(1).max()), 1)
    order = torch.sort(
        ok.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :M]
    return src_idx.gather(1,
                          order), dst_idx.gather(1,
                                                 order), ok.gather(1, order)


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
                 distill_pair_frame: str = 'normalized',
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
        if distill_pair_frame not in ('normalized', 'pixels'):
            raise ValueError('PLRC: distill_pair_frame must be "normalized" '
                             f'or "pixels", got "{distill_pair_frame}"')
        self.point_sampler = TASK_UTILS.build(point_sampler)
        self.loss_img = MODELS.build(loss_img)
        self.loss_point = MODELS.build(loss_point)
        loss_distill = dict(loss_distill)
        loss_distill.setdefault('out_dim', distill_size**2 + num_prototypes)
        self.loss_distill = MODELS.build(loss_distill)
        self.distill_size = distill_size
        self.distill_pos_ratio = distill_pos_ratio
        self.distill_pair_frame = distill_pair_frame
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

    def _keep_pairs(self, src: Tensor, dst: Tensor,
                    ok: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """All pairs, or ``num_distill_points`` random real pairs per image
        (``(B, M)`` each, real pairs first)."""
        if self.num_distill_points is None or \
                self.num_distill_points >= ok.size(1):
            return src, dst, ok
        score = ok.float() + torch.rand(ok.shape, device=ok.device)
        keep = score.topk(self.num_distill_points, dim=1).indices
        return src.gather(1, keep), dst.gather(1, keep), ok.gather(1, keep)

    @staticmethod
    def _unique_cells(idx: Tensor, ok: Tensor,
                      num_cells: int) -> Tuple[Tensor, Tensor]:
        """The distinct cells of ``idx`` ``(B, M)`` among the real pairs
        ``ok``: ``(B, U)`` cell indices and the ``(B, M)`` position of each
        pair's cell in them (the vectors of a cell are computed once)."""
        B = idx.size(0)
        count = idx.new_zeros(B, num_cells, dtype=torch.float32)
        count.scatter_add_(1, idx, ok.float())
        present = count > 0
        U = max(int(present.sum(1).max()), 1)
        cells = present.float().topk(U, dim=1).indices  # (B, U), distinct
        pos = torch.zeros_like(count, dtype=torch.long)
        pos.scatter_(1, cells, torch.arange(U, device=idx.device).expand(B, U))
        return cells, pos.gather(1, idx)

    def _distill_vector(self, enc: Dict[str, Tensor], idx: Tensor, ok: Tensor,
                        ref: Tensor) -> Tensor:
        """``[affinity_scale * f(i) . up(R), logits(i)]`` of cells ``idx``
        ``(B, M)`` (each distinct cell of the real pairs ``ok`` computed
        once; padding rows get an arbitrary one): ``(B, M, S*S + Np)`` from
        ``dino_feat`` ``(B, Cb, h, w)`` and ``dino_logits`` ``(B, Np, h, w)``
        of ``enc``, ``ref`` ``(B, Cb, h, w)``."""
        S = self.distill_size
        cells, pos = self._unique_cells(idx, ok, S * S)
        rows = read_upsampled_rows(enc['dino_feat'], cells, S)  # (B, U, Cb)
        vec = torch.cat([
            upsampled_affinity(rows, ref, S) * self.affinity_scale,
            read_upsampled_rows(enc['dino_logits'], cells, S)
        ], -1)
        return vec.gather(1, pos[..., None].expand(-1, -1, vec.size(-1)))

    def frame_scale(self, ori_shape: Optional[Tensor],
                    batch_size: int) -> Optional[Tensor]:
        """``(B, 2)`` multipliers of original pixels for
        :func:`dense_cell_pairs`: ``1 / (W - 1), 1 / (H - 1)`` for
        ``distill_pair_frame='normalized'`` (the release), None for
        ``'pixels'``.

        Args:
            ori_shape (Tensor, optional): ``(B, 2)`` original ``(h, w)``.
            batch_size (int): B, to check ``ori_shape``.
        """
        if self.distill_pair_frame == 'pixels':
            return None
        if ori_shape is None or ori_shape.shape != (batch_size, 2):
            raise ValueError(
                "PLRCHead: distill_pair_frame='normalized' needs the "
                'original (h, w) of every image (the "ori_shape" metainfo: '
                'load images with LoadImageFromFile(Safe) and keep '
                "'ori_shape' in PackRegionInputs.meta_keys), or set "
                "distill_pair_frame='pixels'.")
        hw = ori_shape.float()
        return 1. / (hw[:, [1, 0]] - 1).clamp(min=1.)

    def distill_loss(self,
                     online: Sequence[Dict[str, Tensor]],
                     target: Sequence[Dict[str, Tensor]],
                     pairs: Sequence[Tuple[int, int]],
                     view_affine: Tensor,
                     img_shape: Tuple[int, int],
                     reference: Optional[Sequence[Dict[str, Tensor]]] = None,
                     ori_shape: Optional[Tensor] = None) -> Tensor:
        """Point-affinity distillation, all directions in one loss call.

        Every pair of cells of :func:`dense_cell_pairs` is a term (a student
        cell with several target cells in reach is distilled towards each of
        them, as the release); the loss is the mean over the pairs of the
        batch.

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
            ori_shape (Tensor, optional): ``(B, 2)`` original ``(h, w)``,
                needed by ``distill_pair_frame='normalized'``.

        Returns:
            Tensor: scalar.
        """
        students, targets, weights = [], [], []
        reference = target if reference is None else reference
        scale = self.frame_scale(ori_shape, view_affine.size(0))
        for on, te, rf, (s, d) in zip(online, target, reference, pairs):
            idx_s, idx_t, ok = self._keep_pairs(
                *dense_cell_pairs(view_affine, img_shape, self.distill_size, s,
                                  d, self.distill_pos_ratio, scale))
            ref = rf['dino_feat'].detach()
            s_vec = self._distill_vector(on, idx_s, ok, ref)
            with torch.no_grad():
                t_vec = self._distill_vector(
                    dict(te, dino_feat=te['dino_feat'].detach()), idx_t, ok,
                    ref)
            students.append(s_vec.flatten(0, 1))
            targets.append(t_vec.flatten(0, 1))
            weights.append(ok.flatten().to(s_vec.dtype))
        if len(students) == 1:  # one direction: no copy of (B*M, D)
            return self.loss_distill(students[0], targets[0], weights[0])
        return self.loss_distill(
            torch.cat(students), torch.cat(targets), torch.cat(weights))

    def image_loss(self, img_q: Sequence[Tensor], img_k: Sequence[Tensor],
                   img_queue: Tensor) -> Tensor:
        """MoCo v2 InfoNCE averaged over the directions.

        Args:
            img_q (Sequence[Tensor]): per direction, ``(B, D)`` online
                embedding of the online view.
            img_k (Sequence[Tensor]): per direction, ``(B, D)`` teacher
                embedding of the teacher view.
            img_queue (Tensor): ``(L, D)`` queued keys (before this step's
                enqueue).

        Returns:
            Tensor: scalar.
        """
        losses = [self.loss_img(q, k, img_queue) for q, k in zip(img_q, img_k)]
        return sum(losses) / len(losses)

    def loss(self,
             img_q: Sequence[Tensor],
             img_k: Sequence[Tensor],
             img_queue: Tensor,
             point_q: Sequence[Tensor],
             point_k: Sequence[Tensor],
             valid: Tensor,
             online: Sequence[Dict[str, Tensor]],
             target: Sequence[Dict[str, Tensor]],
             reference: Sequence[Dict[str, Tensor]],
             pairs: Sequence[Tuple[int, int]],
             view_affine: Tensor,
             img_shape: Tuple[int, int],
             ori_shape: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The PLRC losses of one step, each averaged over the directions.

        Args:
            img_q, img_k (Sequence[Tensor]): per direction, online and
                teacher image embeddings ``(B, D)``.
            img_queue (Tensor): ``(L, D)`` queued teacher keys.
            point_q, point_k (Sequence[Tensor]): per direction, online and
                teacher point embeddings ``(B, K, P, D)``.
            valid (Tensor): ``(B, K)`` bool.
            online, target, reference, pairs: per direction, see
                :meth:`distill_loss`.
            view_affine (Tensor): ``(B, V, 4)``.
            img_shape (tuple[int, int]): ``(H, W)``.
            ori_shape (Tensor, optional): ``(B, 2)`` original ``(h, w)``.

        Returns:
            dict[str, Tensor]: ``loss_img``, ``loss_point``, ``loss_distill``.
        """
        return dict(
            loss_img=self.image_loss(img_q, img_k, img_queue),
            loss_point=self.point_contrast_loss(point_q, point_k, valid),
            loss_distill=self.distill_loss(online, target, pairs, view_affine,
                                           img_shape, reference, ori_shape))


def legacy_head_keys_hook(state_dict: dict, prefix: str, *args) -> None:
    """Load-state-dict pre-hook of :class:`PLRC`: checkpoints saved before
    :class:`PLRCHead` (and the official converter's output) hold its losses'
    state at the top level, ``loss_distill.center``; it is now
    ``head.loss_distill.center``."""
    for name in ('loss_img.', 'loss_point.', 'loss_distill.'):
        for key in [k for k in state_dict if k.startswith(prefix + name)]:
            new = prefix + 'head.' + key[len(prefix):]
            state_dict.setdefault(new, state_dict.pop(key))
