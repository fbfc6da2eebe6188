"""fc - dropout - relu - fc projection (CCOP's image / region MLP)."""
from typing import Optional, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS

__all__ = ['LinearProjNeck']


@MODELS.register_module()
class LinearProjNeck(BaseModule):
    """Two-layer MLP projection, optionally after a global average pool.

    ``[avgpool] -> flatten -> Linear(in, hid) -> Dropout -> ReLU ->
    Linear(hid, out)``. With ``dropout=0`` it is mmpretrain's ``MoCoV2Neck``;
    CCOP's image and RoI necks use ``dropout=0.1`` and no normalisation layer
    (``LinearNormNeck(norm='', last_bn=False)`` in github ChenhongyiYang/CCOP
    ``openselfsup/models/ccop.py``). Inputs and outputs are 1-tuples, the
    mmpretrain neck convention.

    Args:
        in_channels (int): Input size (channels, or C*h*w when the input is
            flattened without pooling).
        hid_channels (int): Hidden size.
        out_channels (int): Embedding size.
        with_avg_pool (bool): Global average pool a (N, C, H, W) input first.
            Defaults to True.
        dropout (float): Dropout after the first layer. Defaults to 0.
        init_cfg (dict | list[dict], optional): Defaults to Normal(std=0.01)
            on the linear layers (OpenSelfSup's ``init_linear='normal'``).
    """

    def __init__(
        self,
        in_channels: int,
        hid_channels: int,
        out_channels: int,
        with_avg_pool: bool = True,
        dropout: float = 0.,
        init_cfg: Optional[Union[dict, list]] = dict(
            type='Normal', std=0.01, bias=0., layer='Linear')
    ) -> None:
        super().__init__(init_cfg)
        self.with_avg_pool = with_avg_pool
        self.in_channels = in_channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1)) if with_avg_pool else None
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hid_channels), nn.Dropout(dropout),
            nn.ReLU(inplace=True), nn.Linear(hid_channels, out_channels))

    def forward(self, x: Tuple[Tensor]) -> Tuple[Tensor]:
        """Project.

        Args:
            x (tuple[Tensor]): one (N, C, H, W) or (N, ...) tensor.

        Returns:
            tuple[Tensor]: one (N, out_channels) tensor.
        """
        assert len(x) == 1, f'{type(self).__name__} takes a 1-tuple.'
        x = x[0]
        if self.avgpool is not None:
            x = self.avgpool(x)
        x = x.flatten(1)
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}: expected '
                             f'{self.in_channels} input features, got '
                             f'{x.shape[1]} (check in_channels).')
        return (self.mlp(x), )
