"""The ``Linear -> [BN] -> ReLU -> ... -> Linear`` stack of the projections."""
import torch.nn as nn

__all__ = ['build_mlp']


def build_mlp(in_channels: int,
              hid_channels: int,
              out_channels: int,
              num_layers: int,
              with_bn: bool = False,
              inplace: bool = False) -> nn.Sequential:
    """``num_layers`` Linear layers, BatchNorm1d (``with_bn``) and ReLU after
    each hidden one.

    The layer indices are those of the official PLRC ``fcs`` / ``fcs_2``
    ``nn.Sequential`` (checkpoint keys ``mlp.<i>.*``).

    Args:
        in_channels (int): input size.
        hid_channels (int): hidden size.
        out_channels (int): output size.
        num_layers (int): Linear layers (>= 1).
        with_bn (bool): BatchNorm1d after the hidden Linear layers.
        inplace (bool): in-place ReLU.

    Returns:
        nn.Sequential: maps ``(N, in_channels)`` to ``(N, out_channels)``.
    """
    if num_layers < 1:
        raise ValueError(f'num_layers must be >= 1, got {num_layers}')
    layers, c = [], in_channels
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(c, hid_channels))
        if with_bn:
            layers.append(nn.BatchNorm1d(hid_channels))
        layers.append(nn.ReLU(inplace=inplace))
        c = hid_channels
    layers.append(nn.Linear(c, out_channels))
    return nn.Sequential(*layers)
