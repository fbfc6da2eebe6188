"""Per-location MLP projection of PLRC's points.

I/O convention (mmpretrain's necks): a tuple of tensors in, a tuple out.
"""
from typing import Optional, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor

from mmregion.registry import MODELS
from ..utils.mlp import build_mlp


@MODELS.register_module()
class PointProjNeck(BaseModule):
    """Per-point MLP projection (``fcs`` of the official PLRC ResNet).

    ``Linear(in, hid) -> ReLU -> ... -> Linear(hid, out)`` applied to the last
    dimension of its one input, so it takes sampled point features
    ``((..., C), )`` or a dense map's locations (``dense_apply``, the
    official order).

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
        self.mlp = build_mlp(
            in_channels,
            hid_channels,
            out_channels,
            num_layers,
            with_bn,
            inplace=True)
        self.out_channels = out_channels

    def forward(self, x: Tuple[Tensor]) -> Tuple[Tensor]:
        """Project.

        Args:
            x (tuple[Tensor]): one ``(..., C)`` tensor.

        Returns:
            tuple[Tensor]: one ``(..., out_channels)`` tensor (not
            normalised).
        """
        (feats, ) = x
        shape = feats.shape[:-1]
        out = self.mlp(feats.reshape(-1, feats.size(-1)))
        return (out.view(*shape, -1), )
