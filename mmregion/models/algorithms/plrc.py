"""PLRC: point-level region contrast (Bai et al., CVPR 2022).

Official code facebookresearch/PLRC @5fbd1cb (``PLRC/models/builder.py``,
``plrc_loss.py``, ``resnet.py``, ``datasets/imagenet.py``); what follows the
release and what does not is listed in ``docs/fidelity.md`` (PLRC).

**Views.** With ``num_views=3`` (the release, the default) the data holds
view 0, view 1 and view 0', a companion crop of view 0 that overlaps it by
at least 50 % (``MultiViewRegions(num_views=3, region_views=(0, 1),
overlap_pairs=[(0, 2)])``). A step is one-directional as in the release (and
MoCo v2): the online encoder sees view 0 only; the momentum teacher sees
view 1 (image and point keys, distillation reference) and view 0' (the
distillation target), i.e. one online forward/backward and two teacher
forwards. ``num_views=2`` is the two-view form: view 1 is also the
distillation target (the teacher's affinity row is then a self-affinity).
``symmetric=True`` (two views only) adds the mirrored direction (online on
view 1, teacher on view 0) for the point and distillation terms.

Per direction ``(s, t)`` (online view ``s``, teacher view ``t``):

1. Image-level MoCo v2 (queue 65536, tau 0.2): online view 0 against the
   teacher's view 1. The embedding is, as released (``builder.py:140,230``),
   ``normalize(mean_hw(point_neck(C5)))``: the spatial mean of the dense
   per-location point projector, so the image loss also trains the point
   head. A separate ``img_neck`` (e.g. ``mmpretrain.MoCoV2Neck``) is the
   option.
2. Point-level region contrast: ``P`` points per region are sampled at the
   same image location in views ``s`` and ``t`` (:class:`RegionPointSampler`);
   ``point_neck`` (a per-location MLP, i.e. a 1x1 conv) is applied to the
   dense C5 map and its 128-d output read at the points with bilinear
   ``grid_sample`` (``dense_point_head=True``, the release's order; its cost
   is ``h*w`` MLP evaluations per image whatever ``K*P``). ``False`` samples
   C5 first and applies the MLP per point (not identical with bilinear
   sampling, the MLP being non-linear). The online points of view ``s`` and
   the teacher points of view ``t`` form one set contrasted with
   :class:`PointInfoNCELoss` (SupCon: positives = the other points of the
   same region in both views). ``regions_per_image=1`` (the release)
   contrasts one random common region per image, whose negatives are the
   points of the other images; ``regions_per_image=None`` (or ``k > 1``)
   contrasts every (or ``k``) common region(s), the other regions of the same
   image being negatives too.
3. Point-affinity distillation: ``dino_head`` gives per-location bottleneck
   features and prototype logits on the C5 grid, bilinearly upsampled to
   ``distill_size x distill_size`` (56 officially). A cell ``i`` of the
   student view ``s`` (online) is paired with the cell ``j`` of the teacher
   view ``d`` (view 0' with three views, else ``t``) that holds the same
   image location (kept if the centres are closer than ``distill_pos_ratio``
   x the larger cell diagonal, as ``overlap()`` of the official
   ``utils.py``). The student vector of ``i`` is ``[affinity_scale * f_s(i) .
   R, logits_s(i)]`` and the target ``[affinity_scale * f'_d(j) . R,
   logits'_d(j)]``, ``R`` being the teacher's features of all ``S*S`` cells
   of the reference view ``t`` (view 1). The upsampling is linear, so the
   loss is evaluated exactly without the dense ``S x S`` maps: the paired
   rows are read from the C5 grid with the bilinear weights of
   ``F.interpolate`` (``align_corners=False``) as one matmul
   (:func:`read_upsampled_rows`), and ``f(i) . R`` is computed on the
   ``h x w`` grid and upsampled (``up(f(i) . F) == f(i) . up(F)``). All
   paired cells are distilled (``num_distill_points=None``, the release:
   the mean over all pairs of the batch); an integer keeps that many random
   paired cells per image, which estimates the mean of each image's pairs
   without bias but weighs every image alike (the release weighs an image by
   its number of pairs).

**Teacher batch statistics.** As the release, the teacher runs on the
batch shuffled across GPUs (shuffle-BN) and its heads (the DINO head has
BatchNorm1d) run before the unshuffle (``teacher_heads_in_shuffle=True``);
``False`` applies them to the unshuffled C5 map. Shuffle-BN only matters
with per-GPU BatchNorm (the release's ``nn.BatchNorm2d``); with SyncBN every
GPU normalises with the statistics of the whole batch and the shuffle is a
no-op.

Loss weights are the ``loss_weight`` of each loss. The paper's intended
weighting is image 0.7, point 0.3, distillation 0.3. The official
``main_plrc.py`` unpacks the two returned losses in swapped order, so it
effectively trains ``1.0 * L_img + 0.21 * L_point + 0.21 * L_distill``;
set those weights to reproduce the release.
"""
import inspect
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from torch import Tensor

from mmregion.registry import MODELS, TASK_UTILS
from ..utils import stack_regions
from ..utils.feature_queue import FeatureQueue
from ..utils.own_scope import in_mmregion_scope
from .base_momentum import BaseMomentumSelfSupervisor, _build

__all__ = [
    'PLRC', 'match_dense_cells', 'select_regions', 'bilinear_matrix',
    'read_upsampled_rows'
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
    dev = aff.device
    cw, ch = W / size, H / size
    ar = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    cy, cx = torch.meshgrid(ar * ch, ar * cw, indexing='ij')
    cx, cy = cx.reshape(1, -1), cy.reshape(1, -1)  # (1, S*S) src pixels
    sxs, txs, sys_, tys = [a[:, None] for a in aff[:, src].unbind(-1)]
    sxd, txd, syd, tyd = [a[:, None] for a in aff[:, dst].unbind(-1)]
    ox, oy = (cx - txs) / sxs, (cy - tys) / sys_  # original pixels
    dx, dy = sxd * ox + txd, syd * oy + tyd  # dst pixels
    inside = (dx >= 0) & (dx < W) & (dy >= 0) & (dy < H)
    jx = (dx / cw).floor().clamp(0, size - 1)
    jy = (dy / ch).floor().clamp(0, size - 1)
    # centre of the matched dst cell, back in original pixels
    mx = ((jx + 0.5) * cw - txd) / sxd
    my = ((jy + 0.5) * ch - tyd) / syd
    dist = torch.sqrt((mx - ox)**2 + (my - oy)**2)
    diag_s = torch.sqrt((cw / sxs)**2 + (ch / sys_)**2)
    diag_d = torch.sqrt((cw / sxd)**2 + (ch / syd)**2)
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




def bilinear_matrix(n_in: int, n_out: int, device=None,
                    dtype=torch.float32) -> Tensor:
    """The ``(n_out, n_in)`` matrix of 1-D linear upsampling.

    ``A @ v`` equals ``F.interpolate(v, n_out, mode='linear',
    align_corners=False)`` (the same weights, computed by ``interpolate``
    itself on the identity); bilinear upsampling of an ``h x w`` map is
    ``A_h @ X @ A_w.T``.
    """
    eye = torch.eye(n_in, device=device, dtype=dtype)[None]
    return F.interpolate(
        eye, size=n_out, mode='linear', align_corners=False)[0].t()


def read_upsampled_rows(x: Tensor, idx: Tensor, size: int) -> Tensor:
    """Rows ``idx`` of ``x`` bilinearly upsampled to ``size x size``.

    Equals ``F.interpolate(x, (size, size), mode='bilinear',
    align_corners=False).flatten(2).transpose(1, 2).gather(1, idx)`` without
    building the upsampled map: output cell ``(r, c)`` is the weighted sum of
    the ``h x w`` input cells with the weights ``A_h[r] (x) A_w[c]``
    (:func:`bilinear_matrix`), one batched matmul. (Faster than
    ``grid_sample`` at the cell centres on CPU when ``C`` is large, e.g.
    4096 prototype logits, forward and backward.)

    Args:
        x (Tensor): ``(B, C, h, w)``.
        idx (Tensor): ``(B, M)`` long row-major indices into ``size*size``.
        size (int): side of the upsampled grid.

    Returns:
        Tensor: ``(B, M, C)``.
    """
    B, C, h, w = x.shape
    a_h = bilinear_matrix(h, size, x.device, x.dtype)  # (S, h)
    a_w = bilinear_matrix(w, size, x.device, x.dtype)  # (S, w)
    row = torch.div(idx, size, rounding_mode='floor')
    weights = a_h[row][..., :, None] * a_w[idx % size][..., None, :]
    return weights.flatten(2) @ x.flatten(2).transpose(1, 2)


def dense_apply(module: nn.Module, feats: Tensor) -> Tensor:
    """Apply a per-location module (``(N, C) -> (N, D)``) to a dense map.

    Args:
        module (nn.Module): e.g. :class:`PointProjNeck`; may return a tuple
            (each element is reshaped).
        feats (Tensor): ``(B, C, h, w)``.

    Returns:
        Tensor | tuple[Tensor]: ``(B, D, h, w)`` per output.
    """
    B, C, h, w = feats.shape
    out = module(feats.permute(0, 2, 3, 1).reshape(B * h * w, C))

    def fold(y: Tensor) -> Tensor:
        return y.view(B, h, w, -1).permute(0, 3, 1, 2)

    if isinstance(out, (tuple, list)):
        return tuple(fold(y) for y in out)
    return fold(out)


# defaults of the image-level arguments of the base class
_BASE_DEFAULTS = inspect.signature(
    BaseMomentumSelfSupervisor.__init__).parameters


@MODELS.register_module()
class PLRC(BaseMomentumSelfSupervisor):
    """Point-level region contrast with point-affinity distillation.

    Args:
        backbone (dict): e.g. ``mmpretrain.ResNet`` with ``out_indices=(3,)``;
            the last output (C5) is used.
        point_neck (dict): per-location projection (:class:`PointProjNeck`,
            2048-2048-128 officially, ``fcs``).
        dino_head (dict): :class:`DINOProjHead` (bottleneck 256, 4096
            prototypes officially, ``fcs_2``).
        img_neck (dict, optional): a separate image-level projection of C5
            (e.g. ``mmpretrain.MoCoV2Neck``). Defaults to None: the image
            embedding is the spatial mean of ``point_neck``'s dense output
            (the release), and ``img_feat_dim`` must be its
            ``out_channels``.
        point_sampler (dict): :class:`RegionPointSampler` config.
        loss_point (dict): :class:`PointInfoNCELoss` config.
        loss_distill (dict): :class:`PointAffinityDistillationLoss` config;
            ``out_dim`` defaults to ``distill_size**2 + num_prototypes``.
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
            release: negatives come from other images only); None: all of
            them (other regions of the same image are negatives too).
        symmetric (bool): also run the mirrored direction (online on view 1,
            teacher on view 0) for the point and distillation terms, which
            doubles the backbone work; two views only. Defaults to False
            (one-directional, as the official code and MoCo v2).
        dense_point_head (bool): apply ``point_neck`` to the dense C5 map and
            sample its output at the points (official order). Defaults to
            True.
        teacher_heads_in_shuffle (bool): run the teacher's heads on the
            shuffled batch (release) rather than on the unshuffled C5.
            Defaults to True.
        num_views (int): 3 (view 0, view 1, view 0' = companion of view 0
            and the distillation target; the release) or 2 (view 1 is the
            distillation target too). Defaults to 3.
        **kwargs: forwarded to :class:`BaseMomentumSelfSupervisor`
            (``img_queue_len``, ``img_feat_dim``, ``loss_img``, ``momentum``,
            ``shuffle_bn``, ``data_preprocessor``, ``init_cfg``, ...).
    """

    @in_mmregion_scope
    def __init__(self,
                 backbone: dict,
                 point_neck: dict,
                 dino_head: dict,
                 img_neck: Optional[dict] = None,
                 point_sampler: dict = dict(
                     type='RegionPointSampler', num_points=16),
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
                 symmetric: bool = False,
                 dense_point_head: bool = True,
                 teacher_heads_in_shuffle: bool = True,
                 num_views: int = 3,
                 **kwargs) -> None:
        if num_views not in (2, 3):
            raise ValueError('PLRC: num_views must be 3 (view 0, view 1, '
                             "view 0') or 2, got "
                             f'num_views={num_views}')
        if symmetric and num_views != 2:
            raise ValueError('PLRC: symmetric=True needs num_views=2 (the '
                             'third view is the companion of view 0 only)')
        if num_distill_points is not None and num_distill_points < 1:
            raise ValueError('PLRC: num_distill_points must be >= 1 or None, '
                             f'got {num_distill_points}')
        if regions_per_image is not None and regions_per_image < 1:
            raise ValueError('PLRC: regions_per_image must be >= 1 or None, '
                             f'got {regions_per_image}')
        # the image queue and loss of the base class exist with an img_neck
        # only; without one they are built here on the point embeddings
        img_args = {
            k: kwargs.pop(k, _BASE_DEFAULTS[k].default)
            for k in ('img_queue_len', 'img_feat_dim', 'loss_img')
        } if img_neck is None else {}
        super().__init__(backbone=backbone, img_neck=img_neck, **kwargs)
        self.point_neck = _build(point_neck)
        self.dino_head = _build(dino_head)
        if img_neck is None:
            dim = getattr(self.point_neck, 'out_channels',
                          img_args['img_feat_dim'])
            if dim != img_args['img_feat_dim']:
                raise ValueError(
                    'PLRC: the image embedding is the mean of point_neck '
                    f'(out_channels={dim}) but img_feat_dim='
                    f'{img_args["img_feat_dim"]}; set them equal (or give an '
                    'img_neck).')
            self.img_queue = FeatureQueue(img_args['img_queue_len'], dim)
            self.loss_img = _build(img_args['loss_img'])
        self.point_sampler = TASK_UTILS.build(point_sampler)
        self.loss_point = _build(loss_point)
        loss_distill = dict(loss_distill)
        loss_distill.setdefault(
            'out_dim', distill_size**2 + self.dino_head.num_prototypes)
        self.loss_distill = _build(loss_distill)
        self.distill_size = distill_size
        self.distill_pos_ratio = distill_pos_ratio
        self.affinity_scale = affinity_scale
        self.num_distill_points = num_distill_points
        self.regions_per_image = regions_per_image
        self.symmetric = symmetric
        self.dense_point_head = dense_point_head
        self.teacher_heads_in_shuffle = teacher_heads_in_shuffle
        self.num_views = num_views
        self.init_momentum_encoder(
            ('backbone', 'img_neck', 'point_neck', 'dino_head'))

    @property
    def point_mean_embedding(self) -> bool:
        """Whether the image embedding is the mean of the point projector."""
        return not self.with_img_neck

    @property
    def directions(self) -> Tuple[Tuple[int, int], ...]:
        """``(online view, teacher view)`` pairs of a training step."""
        return ((0, 1), (1, 0)) if self.symmetric else ((0, 1), )

    def distill_target_view(self, s: int, t: int) -> int:
        """The teacher view paired with student view ``s`` in the
        distillation of direction ``(s, t)``: view 0' (index 2) with three
        views, else ``t``."""
        return 2 if self.num_views == 3 and s == 0 else t

    # ---- per-view features ------------------------------------------------
    def _encode(self,
                c5: Tensor,
                momentum: bool,
                with_point: bool = True) -> Dict[str, Tensor]:
        """Dense per-location heads of one view, computed once per step.

        Args:
            c5 (Tensor): ``(B, C, h, w)`` last backbone stage.
            momentum (bool): use the teacher's heads.
            with_point (bool): compute ``point`` (when a term needs it).

        Returns:
            dict[str, Tensor]: ``c5``; ``point`` ``(B, D, h, w)`` (with
            ``dense_point_head`` or the point-mean image embedding);
            ``dino_feat`` ``(B, Cb, h, w)`` and ``dino_logits``
            ``(B, Np, h, w)``.
        """
        get = self.momentum_module if momentum else (
            lambda n: getattr(self, n))
        out = dict(c5=c5)
        if with_point and (self.dense_point_head
                           or self.point_mean_embedding):
            out['point'] = dense_apply(get('point_neck'), c5)
        out['dino_feat'], out['dino_logits'] = dense_apply(
            get('dino_head'), c5)
        return out

    @torch.no_grad()
    def _encode_teacher(self, inputs: Tensor,
                        with_point: bool = True) -> Dict[str, Tensor]:
        """:meth:`_encode` of the teacher with shuffle-BN.

        The batch is shuffled across ranks (``shuffle_bn``) for the backbone
        and, with ``teacher_heads_in_shuffle``, for the heads too; every
        output is in the input order.
        """
        if not self.shuffle_bn:
            return self._encode(
                self.momentum_module('backbone')(inputs)[-1], True,
                with_point)
        x, idx_unshuffle = batch_shuffle_ddp(inputs)
        c5 = self.momentum_module('backbone')(x)[-1]
        if not self.teacher_heads_in_shuffle:
            return self._encode(
                batch_unshuffle_ddp(c5, idx_unshuffle), True, with_point)
        enc = self._encode(c5, True, with_point)
        return {k: batch_unshuffle_ddp(v, idx_unshuffle)
                for k, v in enc.items()}

    def _points(self, enc: Dict[str, Tensor], points: Tensor,
                img_shape: Tuple[int, int], momentum: bool) -> Tensor:
        """L2-normalised point embeddings ``(B, K, P, D)`` of one view.

        Args:
            enc (dict): output of :meth:`_encode`.
            points (Tensor): ``(B, K, P, 2)`` xy pixels of the view.
            img_shape (tuple[int, int]): ``(H, W)``.
            momentum (bool): use the teacher's ``point_neck`` (only without
                ``dense_point_head``).
        """
        if self.dense_point_head:
            emb = self.point_sampler.read(enc['point'], points, img_shape)
        else:
            neck = self.momentum_module('point_neck') if momentum \
                else self.point_neck
            emb = neck(self.point_sampler.read(enc['c5'], points, img_shape))
        return F.normalize(emb, dim=-1)

    def _image_embedding(self, enc: Dict[str, Tensor],
                         momentum: bool) -> Tensor:
        """L2-normalised image embedding ``(B, D)`` of one view: the mean of
        the dense point projection (release) or ``img_neck`` of C5."""
        if self.point_mean_embedding:
            return F.normalize(enc['point'].mean(dim=(2, 3)), dim=1)
        return self.embed_image(enc['c5'], momentum=momentum)

    # ---- losses -------------------------------------------------------------
    def image_loss(self, online: Dict[str, Tensor],
                   teacher: Dict[str, Tensor]) -> Tensor:
        """Image-level MoCo v2 InfoNCE; enqueues the keys.

        Args:
            online (dict): :meth:`_encode` of the online view 0.
            teacher (dict): :meth:`_encode_teacher` of view 1.

        Returns:
            Tensor: scalar loss (weighted by ``loss_img.loss_weight``).
        """
        q = self._image_embedding(online, momentum=False)
        with torch.no_grad():
            k = self._image_embedding(teacher, momentum=True)
        loss = self.loss_img(q, k, self.img_queue.features)
        self.img_queue.enqueue(k)
        return loss

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
        view_ids = torch.arange(2, device=valid.device).view(
            1, 1, 2, 1).expand(B, K, 2, P).reshape(-1)
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

    def _affinity(self, rows: Tensor, ref: Tensor) -> Tensor:
        """``rows . up(ref)``: affinities to all ``S*S`` upsampled cells.

        Args:
            rows (Tensor): ``(B, M, Cb)``.
            ref (Tensor): ``(B, Cb, h, w)`` features on the C5 grid.

        Returns:
            Tensor: ``(B, M, S*S)``, computed as ``up(rows . ref)``
            (bilinear upsampling is linear: ``A_h @ a @ A_w.T``).
        """
        B, M, _ = rows.shape
        h, w = ref.shape[-2:]
        S = self.distill_size
        a = (rows @ ref.flatten(2)).view(B * M, h, w)
        a_h = bilinear_matrix(h, S, a.device, a.dtype)  # (S, h)
        a_w = bilinear_matrix(w, S, a.device, a.dtype)  # (S, w)
        return (a_h @ a @ a_w.t()).view(B, M, S * S)

    def distill_loss(self,
                     online: Sequence[Dict[str, Tensor]],
                     target: Sequence[Dict[str, Tensor]],
                     pairs: Sequence[Tuple[int, int]],
                     view_affine: Tensor,
                     img_shape: Tuple[int, int],
                     reference: Optional[Sequence[Dict[str, Tensor]]] = None
                     ) -> Tensor:
        """Point-affinity distillation, all directions in one loss call.

        Args:
            online (Sequence[dict]): per direction, :meth:`_encode` of the
                online (student) view (``dino_feat``, ``dino_logits``).
            target (Sequence[dict]): per direction, the teacher's encoding of
                the target view (view 0' with three views).
            pairs (Sequence[tuple[int, int]]): per direction, the
                ``(student, target)`` view indices into ``view_affine``.
            view_affine (Tensor): ``(B, V, 4)``.
            img_shape (tuple[int, int]): ``(H, W)``.
            reference (Sequence[dict], optional): per direction, the
                teacher's encoding of the affinity reference view (view 1).
                Defaults to ``target`` (the two-view form).

        Returns:
            Tensor: scalar.
        """
        students, targets, weights = [], [], []
        S = self.distill_size
        reference = target if reference is None else reference
        for on, te, rf, (s, d) in zip(online, target, reference, pairs):
            idx_t, ok = match_dense_cells(view_affine, img_shape, S, s, d,
                                          self.distill_pos_ratio)
            idx_s = self._distill_rows(ok)  # (B, M)
            ok = ok.gather(1, idx_s)
            idx_t = idx_t.gather(1, idx_s)
            ref = rf['dino_feat'].detach()
            s_vec = torch.cat([
                self._affinity(
                    read_upsampled_rows(on['dino_feat'], idx_s, S), ref) *
                self.affinity_scale,
                read_upsampled_rows(on['dino_logits'], idx_s, S)
            ], -1)
            with torch.no_grad():
                t_vec = torch.cat([
                    self._affinity(
                        read_upsampled_rows(te['dino_feat'].detach(), idx_t,
                                            S), ref) * self.affinity_scale,
                    read_upsampled_rows(te['dino_logits'], idx_t, S)
                ], -1)
            students.append(s_vec.flatten(0, 1))
            targets.append(t_vec.flatten(0, 1))
            weights.append(ok.flatten().to(s_vec.dtype))
        return self.loss_distill(
            torch.cat(students), torch.cat(targets), torch.cat(weights))

    def loss(self, inputs: List[Tensor], data_samples: List,
             **kwargs) -> Dict[str, Tensor]:
        """Compute the PLRC losses.

        Args:
            inputs (list[Tensor]): ``num_views`` views, each
                ``(B, 3, H, W)``: view 0, view 1 (and view 0').
            data_samples (list[DataSample]): with ``boxes`` ``(V, K, 4)``
                (rows of views 0 and 1 are used) and ``view_affine``
                ``(V, 4)`` (``docs/design.md`` sec. 2).

        Returns:
            dict[str, Tensor]: ``loss_img``, ``loss_point``, ``loss_distill``.
        """
        V = self.num_views
        if not isinstance(inputs, (list, tuple)) or len(inputs) != V:
            got = len(inputs) if isinstance(inputs, (list, tuple)) else \
                type(inputs).__name__
            raise ValueError(
                f'PLRC.loss: inputs must be a list of {V} view tensors '
                f'(B, 3, H, W) (num_views={V}), got {got}; with 3 views the '
                'pipeline needs MultiViewRegions(num_views=3, region_views='
                '(0, 1), overlap_pairs=[(0, 2)]).')
        img_shape = tuple(inputs[0].shape[-2:])
        device = inputs[0].device
        boxes, valid = stack_regions(data_samples, V)
        boxes, valid = boxes[:, :2].to(device), valid.to(device)
        aff = []
        for b, sample in enumerate(data_samples):
            a = getattr(sample, 'view_affine', None)
            if a is None:
                raise ValueError(f'PLRC.loss: data_samples[{b}] has no '
                                 '`view_affine` (use PackRegionInputs).')
            aff.append(torch.as_tensor(a, dtype=torch.float32))
        view_affine = torch.stack(aff).to(device)  # (B, V, 4)
        boxes, valid = select_regions(boxes, valid, self.regions_per_image)
        points, valid = self.point_sampler.sample(boxes, valid,
                                                  view_affine[:, :2])

        directions = self.directions
        targets = [self.distill_target_view(s, t) for s, t in directions]
        self.update_momentum_encoder()
        # one backbone pass per view and encoder, shared by all terms
        online = {
            s: self._encode(self.backbone(inputs[s])[-1], False)
            for s in sorted({s for s, _ in directions})
        }
        keys = {t for _, t in directions}
        teacher = {
            t: self._encode_teacher(inputs[t], with_point=t in keys)
            for t in sorted(keys | set(targets))
        }

        losses = dict()
        losses['loss_img'] = self.image_loss(online[0], teacher[1])
        q_pts = [
            self._points(online[s], points[:, s], img_shape, False)
            for s, _ in directions
        ]
        with torch.no_grad():
            k_pts = [
                self._points(teacher[t], points[:, t], img_shape, True)
                for _, t in directions
            ]
        losses['loss_point'] = self.point_contrast_loss(q_pts, k_pts, valid)
        losses['loss_distill'] = self.distill_loss(
            [online[s] for s, _ in directions],
            [teacher[d] for d in targets],
            [(s, d) for (s, _), d in zip(directions, targets)],
            view_affine,
            img_shape,
            reference=[teacher[t] for _, t in directions])
        return losses
