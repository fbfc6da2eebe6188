"""PLRC: point-level region contrast (Bai et al., CVPR 2022).

Official code facebookresearch/PLRC @5fbd1cb; ``docs/fidelity.md`` (PLRC)
lists what follows the release. The algorithm owns the encoders, the teacher,
the image queue and the point sampling; the objective is ``head``
(:class:`PLRCHead`), which receives features and targets.

**Views** (``num_views=3``, the release): view 0, view 1 and view 0', a crop
overlapping view 0 by >= 50 %. The online encoder sees view 0; the teacher
sees view 1 (image and point keys, distillation reference) and view 0'
(distillation target). ``num_views=2``: view 1 is also the target;
``symmetric=True`` adds the mirrored direction to every term (the mean of
the two; the image keys of both views are enqueued).

**Teacher order** (``builder.py``): view 0' is encoded with the teacher of
the previous step, then the EMA step, then view 1 (and view 0 when
symmetric); the first step syncs the teacher with the online encoder.

**Features**: the image embedding is ``normalize(mean_hw(point_neck(C5)))``
(``builder.py:140,230``) unless an ``img_neck`` is given.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from torch import Tensor

from mmregion.registry import MODELS, TASK_UTILS
from ..heads.plrc_head import DistillInputs
from ..utils.dense_ops import dense_apply
from ..utils.own_scope import in_mmregion_scope
from ..utils.region_utils import (check_views, select_regions,
                                  stack_ori_shapes, stack_regions,
                                  stack_view_affine)
from .base_momentum import BaseMomentumSelfSupervisor

__all__ = ['PLRC']


@MODELS.register_module()
class PLRC(BaseMomentumSelfSupervisor):
    """Point-level region contrast with point-affinity distillation.

    Args:
        backbone (dict): e.g. ``mmpretrain.ResNet``, ``out_indices=(3,)``.
        point_neck (dict): :class:`PointProjNeck` (2048-2048-128, ``fcs``).
        dino_neck (dict): :class:`DINOProjNeck` (``fcs_2``).
        head (dict): :class:`PLRCHead` (``num_prototypes`` = the
            ``dino_neck``'s).
        img_neck (dict, optional): a separate image projection of C5.
            Defaults to None (the mean of ``point_neck``, whose
            ``out_channels`` must be ``img_feat_dim``).
        point_sampler (dict): :class:`RegionPointSampler` config.
        regions_per_image (int, optional): common regions contrasted per
            image, drawn at random. Defaults to 1 (the release); None: all.
        symmetric (bool): both directions (two views). Defaults to False.
        dense_point_head (bool): ``point_neck`` on the dense C5 map (the
            release), else on the sampled points. Defaults to True.
        teacher_heads_in_shuffle (bool): the teacher's projections run on
            the shuffled batch (the release). Defaults to True.
        num_views (int): 3 or 2. Defaults to 3.
        **others: :class:`BaseMomentumSelfSupervisor`'s ``img_queue_len``,
            ``img_feat_dim``, ``momentum``, ``shuffle_bn``,
            ``data_preprocessor``, ``pretrained``, ``init_cfg``.
    """

    @in_mmregion_scope
    def __init__(self,
                 backbone: dict,
                 point_neck: dict,
                 dino_neck: dict,
                 head: dict,
                 img_neck: Optional[dict] = None,
                 point_sampler: dict = dict(
                     type='RegionPointSampler', num_points=16),
                 regions_per_image: Optional[int] = 1,
                 symmetric: bool = False,
                 dense_point_head: bool = True,
                 teacher_heads_in_shuffle: bool = True,
                 num_views: int = 3,
                 img_queue_len: int = 65536,
                 img_feat_dim: int = 128,
                 momentum: float = 0.001,
                 shuffle_bn: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if num_views not in (2, 3) or (symmetric and num_views != 2):
            raise ValueError(
                "PLRC: num_views must be 3 (view 0, view 1, view 0') or 2, "
                'and symmetric=True needs num_views=2; got '
                f'num_views={num_views}, symmetric={symmetric}')
        if regions_per_image is not None and regions_per_image < 1:
            raise ValueError('PLRC: regions_per_image must be >= 1 or None, '
                             f'got {regions_per_image}')
        super().__init__(
            backbone=backbone,
            head=head,
            img_neck=img_neck,
            img_queue_len=img_queue_len,
            img_feat_dim=img_feat_dim,
            momentum=momentum,
            shuffle_bn=shuffle_bn,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.point_neck = MODELS.build(point_neck)
        self.dino_neck = MODELS.build(dino_neck)
        if self.head.num_prototypes != self.dino_neck.num_prototypes:
            raise ValueError(
                f'PLRC: head.num_prototypes={self.head.num_prototypes} must '
                'equal dino_neck.num_prototypes='
                f'{self.dino_neck.num_prototypes}.')
        if img_neck is None:  # the image embedding is the point mean
            dim = getattr(self.point_neck, 'out_channels', img_feat_dim)
            if dim != img_feat_dim:
                raise ValueError(f'PLRC: the image embedding is the mean of '
                                 f'point_neck (out_channels={dim}) but '
                                 f'img_feat_dim={img_feat_dim}; set them '
                                 'equal (or give an img_neck).')
            self.init_image_queue(dim)
        self.point_sampler = TASK_UTILS.build(point_sampler)
        self.regions_per_image = regions_per_image
        self.symmetric = symmetric
        self.dense_point_head = dense_point_head
        self.teacher_heads_in_shuffle = teacher_heads_in_shuffle
        self.num_views = num_views
        self.init_momentum_encoder(
            ('backbone', 'img_neck', 'point_neck', 'dino_neck'))

    @property
    def point_mean_embedding(self) -> bool:
        """Whether the image embedding is the mean of ``point_neck``."""
        return not self.with_img_neck

    def directions(self) -> List[Tuple[int, int, int]]:
        """``(online view s, teacher view t, distillation target d)`` of
        each direction: ``d`` is view 0' (index 2) with three views."""
        dirs = [(0, 1), (1, 0)] if self.symmetric else [(0, 1)]
        return [(s, t, 2 if self.num_views == 3 and s == 0 else t)
                for s, t in dirs]

    # ---- per-view features ------------------------------------------------
    def _encode(self,
                c5: Tensor,
                momentum: bool,
                with_point: bool = True) -> Dict[str, Tensor]:
        """Dense per-location projections of one view's C5 ``(B, C, h, w)``:
        ``c5``, ``point`` ``(B, D, h, w)`` (when needed and ``with_point``),
        ``dino_feat`` ``(B, Cb, h, w)``, ``dino_logits`` ``(B, Np, h, w)``."""
        get = self.momentum_module if momentum else lambda n: getattr(self, n)
        out = dict(c5=c5)
        if with_point and (self.dense_point_head or self.point_mean_embedding):
            out['point'], = dense_apply(get('point_neck'), c5)
        out['dino_feat'], out['dino_logits'] = dense_apply(
            get('dino_neck'), c5)
        return out

    @torch.no_grad()
    def _encode_teacher(self,
                        inputs: Tensor,
                        with_point: bool = True) -> Dict[str, Tensor]:
        """:meth:`_encode` of the teacher with shuffle-BN; every output is
        in the input order."""
        backbone = self.momentum_module('backbone')
        if not self.shuffle_bn:
            return self._encode(backbone(inputs)[-1], True, with_point)
        x, idx = batch_shuffle_ddp(inputs)
        c5 = backbone(x)[-1]
        if not self.teacher_heads_in_shuffle:
            return self._encode(batch_unshuffle_ddp(c5, idx), True, with_point)
        enc = self._encode(c5, True, with_point)
        return {k: batch_unshuffle_ddp(v, idx) for k, v in enc.items()}

    def _points(self, enc: Dict[str, Tensor], points: Tensor,
                img_shape: Tuple[int, int], momentum: bool) -> Tensor:
        """L2-normalised point embeddings ``(B, K, P, D)`` of one view at
        ``points`` ``(B, K, P, 2)`` (xy pixels of the view)."""
        read = self.point_sampler.read
        if self.dense_point_head:
            emb = read(enc['point'], points, img_shape)
        else:
            neck = self.momentum_module('point_neck') if momentum \
                else self.point_neck
            emb = neck((read(enc['c5'], points, img_shape), ))[0]
        return F.normalize(emb, dim=-1)

    def _image_embedding(self, enc: Dict[str, Tensor],
                         momentum: bool) -> Tensor:
        """L2-normalised image embedding ``(B, D)`` of one view: the mean of
        the dense point projection (release) or ``img_neck`` of C5."""
        if self.point_mean_embedding:
            return F.normalize(enc['point'].mean(dim=(2, 3)), dim=1)
        return self.embed_image(enc['c5'], momentum=momentum)

    def loss(self, inputs: List[Tensor],
             data_samples: List) -> Dict[str, Tensor]:
        """Compute the PLRC losses.

        Args:
            inputs (list[Tensor]): ``num_views`` views, each
                ``(B, 3, H, W)``: view 0, view 1 (and view 0').
            data_samples (list[DataSample]): with ``boxes`` ``(V, K, 4)``
                (rows of views 0 and 1 are used), ``view_affine`` ``(V, 4)``
                and the ``ori_shape`` metainfo (``docs/design.md`` sec. 2).

        Returns:
            dict[str, Tensor]: ``loss_img``, ``loss_point``, ``loss_distill``.
        """
        V = self.num_views
        check_views(
            inputs, V, 'PLRC.loss', f' (num_views={V}); 3 views need'
            ' MultiViewRegions(num_views=3, region_views=(0, 1), '
            'overlap_pairs=[(0, 2)]).')
        img_shape = tuple(inputs[0].shape[-2:])
        device = inputs[0].device
        boxes, valid = stack_regions(data_samples, V)  # (B, V, K, 4), (B, K)
        boxes, valid = boxes[:, :2].to(device), valid.to(device)
        view_affine = stack_view_affine(data_samples).to(device)  # (B, V, 4)
        boxes, valid = select_regions(boxes, valid, self.regions_per_image)
        # (B, 2, K', P, 2) xy of the same image locations in views 0 and 1
        points, valid = self.point_sampler.sample(boxes, valid,
                                                  view_affine[:, :2])
        dirs = self.directions()
        keys = {t for _, t, _ in dirs}
        # the release's order: view 0' with the previous step's teacher,
        # the EMA step, then view 1 (and view 0) with the new weights
        if self.momentum_encoder.steps == 0:
            self.update_momentum_encoder()  # sync: the first call copies
        teacher = {
            d: self._encode_teacher(inputs[d], with_point=False)
            for d in sorted({d
                             for _, _, d in dirs} - keys)
        }
        self.update_momentum_encoder()
        teacher.update(
            {t: self._encode_teacher(inputs[t])
             for t in sorted(keys)})
        # one backbone pass per view and encoder, shared by all terms
        online = {
            s: self._encode(self.backbone(inputs[s])[-1], False)
            for s in sorted({s
                             for s, _, _ in dirs})
        }
        img_q = [self._image_embedding(online[s], False) for s, _, _ in dirs]
        with torch.no_grad():
            img_k = [
                self._image_embedding(teacher[t], True) for _, t, _ in dirs
            ]
        losses = dict(loss_img=self.image_contrast_loss(img_q, img_k))
        # per direction, (B, K', P, D) online and teacher point embeddings
        q_pts = [
            self._points(online[s], points[:, s], img_shape, False)
            for s, _, _ in dirs
        ]
        with torch.no_grad():
            k_pts = [
                self._points(teacher[t], points[:, t], img_shape, True)
                for _, t, _ in dirs
            ]
        distill = [
            DistillInputs(online[s]['dino_feat'], online[s]['dino_logits'],
                          teacher[d]['dino_feat'], teacher[d]['dino_logits'],
                          teacher[t]['dino_feat'], (s, d)) for s, t, d in dirs
        ]
        losses.update(
            self.head.loss(q_pts, k_pts, valid, distill, view_affine,
                           img_shape, stack_ori_shapes(data_samples, device)))
        return losses
