"""Base class of MoCo-style algorithms: online encoder + EMA teacher + queue.

Momentum convention: the teacher is a :class:`MomentumTeacher` (mmengine's
``ExponentialMovingAverage``), which computes
``teacher = (1 - momentum) * teacher + momentum * online``. MoCo's
``m = 0.999`` is therefore written ``momentum=0.001`` (mmpretrain's MoCo uses
the same convention).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from torch import Tensor

from mmregion.registry import MODELS
from ..utils.feature_queue import FeatureQueue
from ..utils.loss_guard import NonFiniteLossGuardMixin
from ..utils.momentum_teacher import MomentumTeacher
from ..utils.own_scope import in_mmregion_scope

__all__ = ['BaseMomentumSelfSupervisor']


def _build(cfg: Optional[Union[dict, nn.Module]]) -> Optional[nn.Module]:
    """Build ``cfg`` with mmregion's MODELS (scoped names such as
    ``'mmdet.FPN'`` / ``'mmpretrain.ResNet'`` resolve in their library)."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    return MODELS.build(cfg)


class BaseMomentumSelfSupervisor(NonFiniteLossGuardMixin, BaseSelfSupervisor):
    """Online encoder, its EMA (momentum) copy and an image-level MoCo v2 term.

    Submodules built here (all optional except ``backbone``):

    - ``backbone``: e.g. ``dict(type='mmpretrain.ResNet', depth=50,
      out_indices=(0, 1, 2, 3))`` or ``dict(type='mmdet.ResNet', ...)``.
    - ``neck``: applied to the backbone outputs (e.g. ``mmdet.FPN``).
    - ``img_neck``: the image-level projection applied to the last backbone
      stage (a neck taking and returning a 1-tuple, e.g.
      ``mmpretrain.MoCoV2Neck`` or :class:`LinearProjNeck`).
    - ``img_queue`` (:class:`FeatureQueue`) and ``loss_img``
      (:class:`InfoNCELoss`) when ``img_neck`` is given.

    A subclass creates the teacher by calling
    :meth:`init_momentum_encoder` with the names of the modules it covers
    (e.g. ``('backbone', 'neck', 'img_neck', 'region_neck')``); the teacher
    copy of module ``name`` is :meth:`momentum_module`\\ ``(name)``. The
    teacher has ``requires_grad=False`` everywhere and changes only in
    :meth:`update_momentum_encoder` (EMA; its first call copies the online
    weights, so a re-initialised online encoder is synced).

    Args:
        backbone (dict | nn.Module): Online backbone.
        neck (dict | nn.Module, optional): Neck after the backbone.
            Defaults to None.
        img_neck (dict | nn.Module, optional): Image-level projection on the
            last backbone stage. Defaults to None (no image-level term).
        img_queue_len (int): Length of the image key queue. Defaults to 65536
            (MoCo v2).
        img_feat_dim (int): Size of the image embedding. Defaults to 128.
        loss_img (dict): Config of the image-level InfoNCE loss. Defaults to
            ``dict(type='InfoNCELoss', temperature=0.2, loss_weight=1.0)``
            (MoCo v2).
        momentum (float): EMA momentum in mmengine's convention
            (``0.001`` == MoCo's ``0.999``). Defaults to 0.001.
        shuffle_bn (bool): Shuffle the teacher's batch across ranks (MoCo's
            shuffle-BN, a no-op permutation in one process). Defaults to True.
        data_preprocessor (dict | nn.Module, optional): Defaults to
            ``mmpretrain.SelfSupDataPreprocessor``.
        pretrained (str, optional): Checkpoint to initialise from.
        init_cfg (dict, optional): Initialisation config.
    """

    @in_mmregion_scope
    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 neck: Optional[Union[dict, nn.Module]] = None,
                 img_neck: Optional[Union[dict, nn.Module]] = None,
                 img_queue_len: int = 65536,
                 img_feat_dim: int = 128,
                 loss_img: dict = dict(
                     type='InfoNCELoss', temperature=0.2, loss_weight=1.0),
                 momentum: float = 0.001,
                 shuffle_bn: bool = True,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        MomentumTeacher.check_momentum(momentum, type(self).__name__)
        data_preprocessor = data_preprocessor or {}
        if isinstance(data_preprocessor, dict):
            data_preprocessor.setdefault('type',
                                         'mmpretrain.SelfSupDataPreprocessor')
            data_preprocessor = _build(data_preprocessor)
        super().__init__(
            backbone=_build(backbone),
            neck=_build(neck),
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.momentum = momentum
        self.shuffle_bn = shuffle_bn
        self.img_neck = _build(img_neck)
        if self.img_neck is not None:
            self.img_queue = FeatureQueue(img_queue_len, img_feat_dim)
            self.loss_img = _build(loss_img)

    @property
    def with_img_neck(self) -> bool:
        """bool: whether the image-level MoCo v2 term is computed."""
        return getattr(self, 'img_neck', None) is not None

    # ---- momentum encoder -------------------------------------------------
    def init_momentum_encoder(self, names: Sequence[str]) -> None:
        """Create the EMA teacher (:class:`MomentumTeacher`) of the online
        modules ``names``.

        Args:
            names (Sequence[str]): Attribute names of online modules (None
                modules are skipped), e.g. ``('backbone', 'neck')``.
        """
        self.momentum_encoder = MomentumTeacher(
            {
                n: getattr(self, n)
                for n in names if getattr(self, n, None) is not None
            },
            momentum=self.momentum)

    def momentum_module(self, name: str) -> nn.Module:
        """The teacher copy of the online module ``name``."""
        return self.momentum_encoder[name]

    def update_momentum_encoder(self) -> None:
        """One EMA step of the teacher towards the online modules."""
        self.momentum_encoder.update(self)

    # ---- features ---------------------------------------------------------
    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Online backbone features (the backbone that is transferred)."""
        return self.backbone(inputs)

    def _forward_encoder(
            self, inputs: Tensor,
            momentum: bool) -> Tuple[Tuple[Tensor, ...], Tuple[Tensor, ...]]:
        """Backbone (+ neck) of the online or the momentum encoder.

        Returns:
            tuple: ``(backbone_outs, neck_outs)``; ``neck_outs`` is
            ``backbone_outs`` without a neck.
        """
        get = self.momentum_module if momentum else (
            lambda n: getattr(self, n))
        feats = tuple(get('backbone')(inputs))
        outs = tuple(get('neck')(feats)) if self.with_neck else feats
        return feats, outs

    def forward_momentum(
            self,
            inputs: Tensor) -> Tuple[Tuple[Tensor, ...], Tuple[Tensor, ...]]:
        """Teacher backbone (+ neck) on ``inputs`` without gradients, with
        shuffle-BN across ranks; outputs are in the input order.

        Args:
            inputs (Tensor): (B, 3, H, W) images.

        Returns:
            tuple: ``(backbone_outs, neck_outs)`` as in the online encoder.
        """
        with torch.no_grad():
            if self.shuffle_bn:
                inputs, idx_unshuffle = batch_shuffle_ddp(inputs)
            feats, outs = self._forward_encoder(inputs, momentum=True)
            if self.shuffle_bn:
                feats = tuple(
                    batch_unshuffle_ddp(f, idx_unshuffle) for f in feats)
                outs = feats if not self.with_neck else tuple(
                    batch_unshuffle_ddp(o, idx_unshuffle) for o in outs)
        return feats, outs

    # ---- image-level MoCo v2 ---------------------------------------------
    def embed_image(self, last_feat: Tensor, momentum: bool = False) -> Tensor:
        """L2-normalised image embedding of the last backbone stage.

        Args:
            last_feat (Tensor): (B, C, H, W) last backbone stage.
            momentum (bool): Use the teacher's ``img_neck``.

        Returns:
            Tensor: (B, img_feat_dim) embeddings.
        """
        neck = self.momentum_module('img_neck') if momentum else self.img_neck
        return F.normalize(neck((last_feat, ))[0], dim=1)

    def image_contrast_loss(self, q_last: Tensor, k_last: Tensor) -> Tensor:
        """Image-level MoCo v2 InfoNCE; enqueues the keys.

        Args:
            q_last (Tensor): (B, C, H, W) online last stage, view 1.
            k_last (Tensor): (B, C, H, W) teacher last stage, view 2.

        Returns:
            Tensor: scalar loss (weighted by ``loss_img.loss_weight``).
        """
        q = self.embed_image(q_last)
        with torch.no_grad():
            k = self.embed_image(k_last, momentum=True)
        loss = self.loss_img(q, k, self.img_queue.features)
        self.img_queue.enqueue(k)
        return loss
