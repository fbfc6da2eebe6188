"""Projection head that maps decoder query embeddings to object embeddings."""
import copy
from typing import Optional

from mmdet.models.layers import MLP

from mmregion.registry import MODELS


@MODELS.register_module()
class ObjectEmbeddingHead(MLP):
    """An MLP applied to every decoder query (DETReg's ``feature_embed``).

    mmdet's DETR :class:`~mmdet.models.layers.MLP` (DETReg's ``MLP`` class):
    ``num_layers`` linear layers ``layers.j`` with ReLU in between (none
    after the last): ``in_channels -> hid_channels -> ... -> out_channels``,
    (..., in_channels) -> (..., out_channels). Checkpoints written before
    issue 13 (``nn.Sequential`` keys ``mlp.{2j}.*``) still load.

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
            raise ValueError('ObjectEmbeddingHead: num_layers must be >= 1, '
                             f'got {num_layers}')
        super().__init__(in_channels, hid_channels, out_channels, num_layers)
        self.init_cfg = copy.deepcopy(init_cfg)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Rename the former ``mlp.{2j}.*`` keys to ``layers.j.*``."""
        old = prefix + 'mlp.'
        for key in [k for k in state_dict if k.startswith(old)]:
            idx, name = key[len(old):].split('.', 1)
            state_dict[f'{prefix}layers.{int(idx) // 2}.{name}'] = \
                state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
