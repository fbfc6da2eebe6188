"""Projection head that maps decoder query embeddings to object embeddings."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS


@MODELS.register_module()
class ObjectEmbeddingHead(BaseModule):
    """An MLP applied to every decoder query (DETReg's ``feature_embed``).

    ``num_layers`` linear layers with ReLU in between (none after the last):
    ``in_channels -> hid_channels -> ... -> out_channels``.

    Args:
        in_channels (int): Decoder embedding size (256 for Deformable DETR).
        hid_channels (int): Hidden width. Defaults to 256.
        out_channels (int): Embedding size. Defaults to 256.
        num_layers (int): Number of linear layers (>= 1). Defaults to 2.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 hid_channels: int = 256,
                 out_channels: int = 256,
                 num_layers: int = 2,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError('ObjectEmbeddingHead: num_layers must be >= 1, '
                             f'got {num_layers}')
        dims = [in_channels] + [hid_channels] * (num_layers - 1) + \
            [out_channels]
        layers = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_channels) -> (..., out_channels)."""
        return self.mlp(x)
