"""DINO projection with prototypes, applied per location (PLRC).

I/O convention (mmpretrain's necks): a tuple of tensors in, a tuple out.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS
from ..utils.mlp import build_mlp


@MODELS.register_module()
class DINOProjNeck(BaseModule):
    """DINO-style projection with prototypes, applied per location.

    ``MLP(in -> hid -> ... -> bottleneck)`` with BatchNorm1d, then L2
    normalisation, then a weight-normalised linear layer onto
    ``num_prototypes`` prototypes (``ProjHead``/``fcs_2`` of the official
    PLRC ResNet: hidden 2048, bottleneck 256, 4096 prototypes, 3 layers).

    The prototype layer is ``W = g * v / ||v||`` per prototype; with
    ``norm_last_layer=True`` ``g`` is fixed to 1 (as in the official code),
    implemented directly (no ``weight_norm`` hook) so that the module
    deep-copies cleanly into an EMA teacher.

    Args:
        in_channels (int): input channels.
        hid_channels (int): Defaults to 2048.
        bottleneck_channels (int): Defaults to 256.
        num_prototypes (int): Defaults to 4096.
        num_layers (int): MLP Linear layers. Defaults to 3.
        with_bn (bool): Defaults to True.
        norm_last_layer (bool): fix the prototype norms to 1. Defaults to True.
        init_cfg (dict, optional): Defaults to truncated normal std 0.02 on
            the Linear layers (official ``_init_weights``).
    """

    def __init__(
        self,
        in_channels: int,
        hid_channels: int = 2048,
        bottleneck_channels: int = 256,
        num_prototypes: int = 4096,
        num_layers: int = 3,
        with_bn: bool = True,
        norm_last_layer: bool = True,
        init_cfg: Optional[Union[dict, list]] = dict(
            type='TruncNormal', layer='Linear', std=0.02, bias=0.)
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.mlp = build_mlp(in_channels, hid_channels, bottleneck_channels,
                             max(num_layers, 1), with_bn)
        self.prototypes = nn.Parameter(
            torch.empty(num_prototypes, bottleneck_channels))
        nn.init.kaiming_uniform_(self.prototypes, a=5**0.5)
        self.prototype_norm = nn.Parameter(
            torch.ones(num_prototypes), requires_grad=not norm_last_layer)
        self.bottleneck_channels = bottleneck_channels
        self.num_prototypes = num_prototypes

    def forward(self, x: Tuple[Tensor]) -> Tuple[Tensor, Tensor]:
        """Project.

        Args:
            x (tuple[Tensor]): one ``(N, C)`` tensor, features of N
                locations.

        Returns:
            tuple[Tensor, Tensor]: L2-normalised bottleneck features
            ``(N, bottleneck)`` and prototype logits ``(N, num_prototypes)``.
        """
        (feats, ) = x
        f = F.normalize(self.mlp(feats), dim=-1)
        w = F.normalize(self.prototypes, dim=-1) * self.prototype_norm[:, None]
        return f, f @ w.t()
