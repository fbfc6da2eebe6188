from typing import Optional, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS


@MODELS.register_module()
class PointProjNeck(BaseModule):
    """Per-point MLP projection (``fcs`` of the official PLRC ResNet).

    ``Linear(in, hid) -> ReLU -> ... -> Linear(hid, out)`` applied to the last
    dimension, so it takes sampled point features ``(..., C)`` (the official
    code applies it densely before sampling; applying it to the sampled
    points is cheaper and identical up to the bilinear interpolation).

    Args:
        in_channels (int): C5 channels (2048 for ResNet-50).
        hid_channels (int): Defaults to 2048 (``build_mlp1``).
        out_channels (int): Defaults to 128.
        num_layers (int): number of Linear layers. Defaults to 2.
        with_bn (bool): BatchNorm1d after hidden Linear layers (not in the
            official code). Defaults to False.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 hid_channels: int = 2048,
                 out_channels: int = 128,
                 num_layers: int = 2,
                 with_bn: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        layers = []
        c = in_channels
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(c, hid_channels))
            if with_bn:
                layers.append(nn.BatchNorm1d(hid_channels))
            layers.append(nn.ReLU(inplace=True))
            c = hid_channels
        layers.append(nn.Linear(c, out_channels))
        self.mlp = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        """Project.

        Args:
            x (Tensor): ``(..., C)``.

        Returns:
            Tensor: ``(..., out_channels)`` (not normalised).
        """
        shape = x.shape[:-1]
        return self.mlp(x.reshape(-1, x.size(-1))).view(*shape, -1)
