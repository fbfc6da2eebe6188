"""Projection of decoder query embeddings to object embeddings."""
import copy
from typing import Optional

from mmdet.models.layers import MLP

from mmregion.registry import MODELS


@MODELS.register_module()
class ObjectEmbeddingNeck(MLP):
    """An MLP applied to every decoder query (DETReg's ``feature_embed``).

    mmdet's DETR :class:`~mmdet.models.layers.MLP` (DETReg's ``MLP`` class):
    ``num_layers`` linear layers ``layers.j`` with ReLU in between (none
    after the last): ``in_channels -> hid_channels -> ... -> out_channels``,
    (..., in_channels) -> (..., out_channels). ProSeCo's teacher holds an
    EMA copy of it, as mmpretrain's momentum algorithms copy their neck.

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
        if num_layers < 1:
            raise ValueError('ObjectEmbeddingNeck: num_layers must be >= 1, '
                             f'got {num_layers}')
        super().__init__(in_channels, hid_channels, out_channels, num_layers)
        self.init_cfg = copy.deepcopy(init_cfg)
