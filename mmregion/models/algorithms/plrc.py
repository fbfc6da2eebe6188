"""PLRC: point-level region contrast (Bai et al., CVPR 2022).

Official code facebookresearch/PLRC @5fbd1cb (``PLRC/models/builder.py``,
``resnet.py``, ``datasets/imagenet.py``); ``docs/fidelity.md`` (PLRC) lists
what follows the release. This file runs the encoders; the objective (image
MoCo v2, point contrast, point-affinity distillation) is
:class:`PLRCHead` (``models/heads/plrc_head.py``).

**Views.** With ``num_views=3`` (the release, the default) the data holds
view 0, view 1 and view 0', a companion crop of view 0 that overlaps it by
at least 50 % (``MultiViewRegions(num_views=3, region_views=(0, 1),
overlap_pairs=[(0, 2)])``). A step is one-directional as in the release (and
MoCo v2): the online encoder sees view 0 only; the momentum teacher sees
view 1 (image and point keys, distillation reference) and view 0' (the
distillation target): one online forward/backward and two teacher forwards.
``num_views=2``: view 1 is also the distillation target. ``symmetric=True``
(two views only) adds the mirrored direction (online on view 1, teacher on
view 0) for the point and distillation terms.

**Features.** The image embedding is, as released (``builder.py:140,230``),
``normalize(mean_hw(point_neck(C5)))`` (so the image loss also trains the
point head); a separate ``img_neck`` (e.g. ``mmpretrain.MoCoV2Neck``) is the
option. ``point_neck`` (a per-location MLP) is applied to the dense C5 map and
read at the points with bilinear ``grid_sample`` (``dense_point_head=True``,
the release's order); ``False`` samples C5 first and applies the MLP per
point. ``dino_head`` gives per-location bottleneck features and prototype
logits on the C5 grid for the distillation.

**Teacher batch statistics.** As the release, the teacher runs on the batch
shuffled across GPUs (shuffle-BN) and its heads (BatchNorm1d in the DINO
head) run before the unshuffle (``teacher_heads_in_shuffle=True``); ``False``
applies them to the unshuffled C5 map. With SyncBN the shuffle is a no-op.
"""
import inspect
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from torch import Tensor

from mmregion.registry import MODELS
from ..utils import check_views, stack_regions, stack_view_affine
from ..utils.dense_ops import dense_apply
from ..utils.feature_queue import FeatureQueue
from ..utils.own_scope import in_mmregion_scope
from .base_momentum import BaseMomentumSelfSupervisor, _build

__all__ = ['PLRC']

# defaults of the image-level arguments of the base class
_BASE_DEFAULTS = inspect.signature(
    BaseMomentumSelfSupervisor.__init__).parameters
# flat config keys of the default head (the configs' historical layout)
_HEAD_KEYS = ('point_sampler', 'loss_img', 'loss_point', 'loss_distill',
              'distill_size', 'distill_pos_ratio', 'affinity_scale',
              'num_distill_points', 'regions_per_image')


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
        img_neck (dict, optional): a separate image-level projection of C5.
            Defaults to None: the image embedding is the spatial mean of
            ``point_neck``'s dense output (the release), and ``img_feat_dim``
            must be its ``out_channels``.
        head (dict, optional): overrides of the :class:`PLRCHead` config. The
            head is built from the flat keys ``point_sampler``, ``loss_img``,
            ``loss_point``, ``loss_distill``, ``distill_size``,
            ``distill_pos_ratio``, ``affinity_scale``, ``num_distill_points``
            and ``regions_per_image`` (see :class:`PLRCHead` for their
            meaning and defaults) updated with ``head``.
        symmetric (bool): also run the mirrored direction (online on view 1,
            teacher on view 0), doubling the backbone work; two views only.
            Defaults to False (one-directional, as the release and MoCo v2).
        dense_point_head (bool): apply ``point_neck`` to the dense C5 map and
            sample its output at the points (release). Defaults to True.
        teacher_heads_in_shuffle (bool): run the teacher's heads on the
            shuffled batch (release). Defaults to True.
        num_views (int): 3 (view 0, view 1, view 0'; the release) or 2.
            Defaults to 3.
        **kwargs: the head keys above, then
            :class:`BaseMomentumSelfSupervisor`'s (``img_queue_len``,
            ``img_feat_dim``, ``momentum``, ``shuffle_bn``, ...).
    """

    @in_mmregion_scope
    def __init__(self,
                 backbone: dict,
                 point_neck: dict,
                 dino_head: dict,
                 img_neck: Optional[dict] = None,
                 head: Optional[dict] = None,
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
        head_cfg = {k: kwargs.pop(k) for k in _HEAD_KEYS if k in kwargs}
        head_cfg.setdefault('loss_img', _BASE_DEFAULTS['loss_img'].default)
        # without an img_neck the image queue is built here, on the
        # point-mean embeddings; the image loss is the head's
        queue_args = {
            k: kwargs.pop(k, _BASE_DEFAULTS[k].default)
            for k in ('img_queue_len', 'img_feat_dim')
        } if img_neck is None else {}
        super().__init__(
            backbone=backbone, img_neck=img_neck, loss_img=None, **kwargs)
        self.point_neck = _build(point_neck)
        self.dino_head = _build(dino_head)
        if img_neck is None:
            dim = getattr(self.point_neck, 'out_channels',
                          queue_args['img_feat_dim'])
            if dim != queue_args['img_feat_dim']:
                raise ValueError(
                    'PLRC: the image embedding is the mean of point_neck '
                    f'(out_channels={dim}) but img_feat_dim='
                    f'{queue_args["img_feat_dim"]}; set them equal (or give '
                    'an img_neck).')
            self.img_queue = FeatureQueue(queue_args['img_queue_len'], dim)
        head_cfg = dict(
            type='PLRCHead',
            num_prototypes=self.dino_head.num_prototypes,
            **head_cfg)
        head_cfg.update(head or {})
        self.head = _build(head_cfg)
        self.symmetric = symmetric
        self.dense_point_head = dense_point_head
        self.teacher_heads_in_shuffle = teacher_heads_in_shuffle
        self.num_views = num_views
        self.init_momentum_encoder(
            ('backbone', 'img_neck', 'point_neck', 'dino_head'))
        # checkpoints before the head: ``loss_distill.center`` etc.
        self._register_load_state_dict_pre_hook(_head_keys_pre_hook)

    @property
    def loss_distill(self) -> nn.Module:
        """The head's distillation loss (``PLRCTeacherTempHook`` sets its
        ``progress``)."""
        return self.head.loss_distill

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
        """:meth:`_encode` of the teacher with shuffle-BN (the backbone and,
        with ``teacher_heads_in_shuffle``, the heads run on the shuffled
        batch); every output is in the input order."""
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
        """L2-normalised point embeddings ``(B, K, P, D)`` of one view at
        ``points`` ``(B, K, P, 2)`` (xy pixels of the view)."""
        read = self.head.point_sampler.read
        if self.dense_point_head:
            emb = read(enc['point'], points, img_shape)
        else:
            neck = self.momentum_module('point_neck') if momentum \
                else self.point_neck
            emb = neck(read(enc['c5'], points, img_shape))
        return F.normalize(emb, dim=-1)

    def _image_embedding(self, enc: Dict[str, Tensor],
                         momentum: bool) -> Tensor:
        """L2-normalised image embedding ``(B, D)`` of one view: the mean of
        the dense point projection (release) or ``img_neck`` of C5."""
        if self.point_mean_embedding:
            return F.normalize(enc['point'].mean(dim=(2, 3)), dim=1)
        return self.embed_image(enc['c5'], momentum=momentum)

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
        check_views(
            inputs, V, 'PLRC.loss',
            f' (num_views={V}); with 3 views the pipeline needs '
            'MultiViewRegions(num_views=3, region_views=(0, 1), '
            'overlap_pairs=[(0, 2)]).')
        img_shape = tuple(inputs[0].shape[-2:])
        device = inputs[0].device
        boxes, valid = stack_regions(data_samples, V)  # (B, V, K, 4), (B, K)
        boxes, valid = boxes[:, :2].to(device), valid.to(device)
        view_affine = stack_view_affine(data_samples).to(device)  # (B, V, 4)
        # (B, 2, K', P, 2) xy of the same image locations in views 0 and 1
        points, valid = self.head.sample_points(boxes, valid,
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
        img_q = self._image_embedding(online[0], momentum=False)  # (B, D)
        with torch.no_grad():
            img_k = self._image_embedding(teacher[1], momentum=True)
        img_queue = self.img_queue.features  # (L, D), before the enqueue
        self.img_queue.enqueue(img_k)
        # per direction, (B, K', P, D) online and teacher point embeddings
        q_pts = [
            self._points(online[s], points[:, s], img_shape, False)
            for s, _ in directions
        ]
        with torch.no_grad():
            k_pts = [
                self._points(teacher[t], points[:, t], img_shape, True)
                for _, t in directions
            ]
        return self.head.loss(
            img_q, img_k, img_queue, q_pts, k_pts, valid,
            online=[online[s] for s, _ in directions],
            target=[teacher[d] for d in targets],
            reference=[teacher[t] for _, t in directions],
            pairs=[(s, d) for (s, _), d in zip(directions, targets)],
            view_affine=view_affine,
            img_shape=img_shape)


def _head_keys_pre_hook(state_dict, prefix, *args) -> None:
    """Load checkpoints saved before :class:`PLRCHead`: their
    ``loss_distill.*`` (``loss_img.*``, ``loss_point.*``) keys are now
    ``head.loss_distill.*`` (the official converter writes the old key)."""
    for name in ('loss_img.', 'loss_point.', 'loss_distill.'):
        for key in [k for k in state_dict if k.startswith(prefix + name)]:
            new = prefix + 'head.' + key[len(prefix):]
            state_dict.setdefault(new, state_dict.pop(key))
