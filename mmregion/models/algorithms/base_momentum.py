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


class BaseMomentumSelfSupervisor(NonFiniteLossGuardMixin, BaseSelfSupervisor):
    """Online encoder, its EMA (momentum) copy and the image-level MoCo v2
    queue.

    mmpretrain's rule for the parts: the algorithm owns the encoders, the
    teacher and the queues; the objective is ``head`` (built from
    ``head=dict(type=..., loss_...=dict(...))``), which receives features
    and targets. Built here: ``backbone``, ``neck`` (optional, e.g.
    ``mmdet.FPN``), ``head``, ``img_neck`` (optional image-level projection
    of the last stage, a neck taking and returning a 1-tuple, e.g.
    :class:`LinearProjNeck`) and, with ``img_neck``, ``img_queue``
    (:class:`FeatureQueue`; a subclass that embeds images otherwise calls
    :meth:`init_image_queue` itself).

    The image-level MoCo v2 term is the same in every subclass: the
    algorithm embeds the views (:meth:`embed_image` or its own embedding),
    :meth:`image_contrast_loss` takes this step's negatives from the queue,
    enqueues the keys and calls the head's ``image_loss``
    (:class:`ImageContrastHead`).

    A subclass creates the teacher with :meth:`init_momentum_encoder` and
    the names of the modules it covers; the teacher copy of module ``name``
    is :meth:`momentum_module`\\ ``(name)``. The teacher has
    ``requires_grad=False`` everywhere and changes only in
    :meth:`update_momentum_encoder` (EMA; its first call copies the online
    weights, so a re-initialised online encoder is synced).

    Args:
        backbone (dict | nn.Module): Online backbone, e.g.
            ``dict(type='mmpretrain.ResNet', depth=50)``.
        neck (dict | nn.Module, optional): Neck after the backbone.
        head (dict | nn.Module, optional): The objective. Defaults to None.
        img_neck (dict | nn.Module, optional): Image-level projection of the
            last backbone stage. Defaults to None.
        img_queue_len (int): Length of the image key queue. Defaults to 65536
            (MoCo v2).
        img_feat_dim (int): Size of the image embedding. Defaults to 128.
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
                 head: Optional[Union[dict, nn.Module]] = None,
                 img_neck: Optional[Union[dict, nn.Module]] = None,
                 img_queue_len: int = 65536,
                 img_feat_dim: int = 128,
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
        # built with mmregion's MODELS: scoped names such as 'mmdet.FPN' or
        # 'mmpretrain.ResNet' resolve in their library
        build = (lambda cfg: cfg if cfg is None or isinstance(cfg, nn.Module)
                 else MODELS.build(cfg))
        super().__init__(
            backbone=build(backbone),
            neck=build(neck),
            head=build(head),
            pretrained=pretrained,
            data_preprocessor=build(data_preprocessor),
            init_cfg=init_cfg)
        self.momentum = momentum
        self.shuffle_bn = shuffle_bn
        self.img_queue_len = img_queue_len
        self.img_feat_dim = img_feat_dim
        self.img_neck = build(img_neck)
        if self.img_neck is not None:
            self.init_image_queue(img_feat_dim)

    @property
    def with_img_neck(self) -> bool:
        """bool: whether images are embedded by ``img_neck``."""
        return getattr(self, 'img_neck', None) is not None

    def init_image_queue(self, dim: int) -> None:
        """Create ``img_queue`` (``img_queue_len`` keys of size ``dim``)."""
        self.img_queue = FeatureQueue(self.img_queue_len, dim)

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

    def forward_momentum(
            self,
            inputs: Tensor) -> Tuple[Tuple[Tensor, ...], Tuple[Tensor, ...]]:
        """Teacher backbone (+ neck) on ``inputs`` without gradients, with
        shuffle-BN across ranks; outputs are in the input order.

        Args:
            inputs (Tensor): (B, 3, H, W) images.

        Returns:
            tuple: ``(backbone_outs, neck_outs)``; ``neck_outs`` is
            ``backbone_outs`` without a neck.
        """
        with torch.no_grad():
            if self.shuffle_bn:
                inputs, idx_unshuffle = batch_shuffle_ddp(inputs)
            feats = tuple(self.momentum_module('backbone')(inputs))
            outs = tuple(self.momentum_module('neck')(
                feats)) if self.with_neck else feats
            if self.shuffle_bn:
                feats = tuple(
                    batch_unshuffle_ddp(f, idx_unshuffle) for f in feats)
                outs = feats if not self.with_neck else tuple(
                    batch_unshuffle_ddp(o, idx_unshuffle) for o in outs)
        return feats, outs

    # ---- image-level MoCo v2 ---------------------------------------------
    def embed_image(self, last_feat: Tensor, momentum: bool = False) -> Tensor:
        """L2-normalised ``img_neck`` embedding of the last backbone stage.

        Args:
            last_feat (Tensor): (B, C, H, W) last backbone stage.
            momentum (bool): Use the teacher's ``img_neck``.

        Returns:
            Tensor: (B, img_feat_dim) embeddings.
        """
        neck = self.momentum_module('img_neck') if momentum else self.img_neck
        return F.normalize(neck((last_feat, ))[0], dim=1)

    def image_contrast_loss(self, query: Sequence[Tensor],
                            key: Sequence[Tensor]) -> Tensor:
        """The image-level MoCo v2 term: the head's ``image_loss`` against
        the queue as it was before this step, then the keys are enqueued.

        Args:
            query (Sequence[Tensor]): per direction, (B, D) online
                embeddings.
            key (Sequence[Tensor]): per direction, (B, D) teacher
                embeddings (all are enqueued).

        Returns:
            Tensor: scalar loss (the mean over the directions).
        """
        negatives = self.img_queue.features  # a copy, before the enqueue
        self.img_queue.enqueue(torch.cat(list(key)))
        return self.head.image_loss(query, key, negatives)
