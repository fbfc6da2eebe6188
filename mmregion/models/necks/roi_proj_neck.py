"""Region embedding: multi-level RoIAlign on FPN maps -> flatten -> MLP."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.ops import RoIAlign
from mmengine.model import BaseModule
from torch import Tensor
from torchvision.ops import roi_align as tv_roi_align

from mmregion.registry import MODELS
from .linear_proj_neck import LinearProjNeck

__all__ = ['RoIProjNeck', 'soco_level_assign']


def soco_level_assign(rois: Tensor, assign_sizes: Sequence[float],
                      num_levels: int) -> Tensor:
    """SoCo/CCOP level rule: the level index is the number of thresholds
    that ``sqrt(area)`` exceeds.

    With ``assign_sizes=(48, 96, 192)`` on a 224-px view: size <= 48 -> P2,
    (48, 96] -> P3, (96, 192] -> P4, > 192 -> P5 (CCOP's
    ``pooling_assign_sizes=(224, 192, 96, 48)`` in
    ``openselfsup/models/utils/pooler.py``; there a box larger than 224,
    impossible in a 224-px view, would fall to P2; here it stays on the
    coarsest level).

    Args:
        rois (Tensor): (N, 5) ``[batch_idx, x1, y1, x2, y2]``.
        assign_sizes (Sequence[float]): Increasing thresholds (pixels).
        num_levels (int): Number of feature levels.

    Returns:
        Tensor: (N,) long level indices in ``[0, num_levels)``.
    """
    wh = (rois[:, 3:5] - rois[:, 1:3]).clamp(min=0)
    size = (wh[:, 0] * wh[:, 1]).sqrt()
    thr = size.new_tensor(list(assign_sizes))
    level = (size[:, None] > thr[None, :]).sum(dim=1)
    return level.clamp(max=num_levels - 1)


@MODELS.register_module()
class RoIProjNeck(BaseModule):
    """CCOP's region neck: RoIAlign (7x7, aligned, i.e. detectron2's
    ROIAlignV2) on P2-P5 with SoCo level assignment -> flatten -> MLP.

    The level thresholds ``assign_sizes`` are given for a view of
    ``ref_size`` pixels and scaled by ``view_size / ref_size`` at run time, so
    a 96-px toy view uses the same relative rule as the 224-px views.

    Args:
        in_channels (int): FPN channels. Defaults to 256.
        featmap_strides (Sequence[int]): Strides of the input maps.
            Defaults to (4, 8, 16, 32) (P2-P5).
        roi_size (int): RoIAlign output size. Defaults to 7.
        sampling_ratio (int): RoIAlign sampling ratio (0 = adaptive, as
            detectron2's ``POOLER_SAMPLING_RATIO=0``). Defaults to 0.
        aligned (bool): Half-pixel alignment (ROIAlignV2). Defaults to True.
        cpu_kernel (str): RoIAlign kernel for CPU tensors: ``'torchvision'``
            (``torchvision.ops.roi_align``, the same average-pooled
            RoIAlign, outputs equal to mmcv's, but multi-threaded and ~3x
            faster on CPU) or ``'mmcv'``. Other devices always use
            ``mmcv.ops.RoIAlign``. Defaults to 'torchvision'.
        assign_sizes (Sequence[float]): Level thresholds in pixels of a
            ``ref_size`` view. Defaults to (48, 96, 192).
        ref_size (float): View size the thresholds refer to. Defaults to 224.
        hid_channels (int): MLP hidden size. Defaults to 2048.
        out_channels (int): Embedding size. Defaults to 128.
        dropout (float): MLP dropout. Defaults to 0.1 (CCOP).
        mlp_init_cfg (dict, optional): Initialisation of the MLP's linear
            layers; None keeps PyTorch's default. Defaults to Normal(std=0.01)
            (OpenSelfSup's ``init_linear='normal'``).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 featmap_strides: Sequence[int] = (4, 8, 16, 32),
                 roi_size: int = 7,
                 sampling_ratio: int = 0,
                 aligned: bool = True,
                 cpu_kernel: str = 'torchvision',
                 assign_sizes: Sequence[float] = (48, 96, 192),
                 ref_size: float = 224,
                 hid_channels: int = 2048,
                 out_channels: int = 128,
                 dropout: float = 0.1,
                 mlp_init_cfg: Optional[dict] = dict(
                     type='Normal', std=0.01, bias=0., layer='Linear'),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg)
        if list(assign_sizes) != sorted(assign_sizes):
            raise ValueError('RoIProjNeck: assign_sizes must increase, got '
                             f'{assign_sizes}.')
        if cpu_kernel not in ('torchvision', 'mmcv'):
            raise ValueError('RoIProjNeck: cpu_kernel must be "torchvision" '
                             f'or "mmcv", got {cpu_kernel!r}.')
        self.cpu_kernel = cpu_kernel
        self.featmap_strides = tuple(featmap_strides)
        self.assign_sizes = tuple(float(s) for s in assign_sizes)
        self.ref_size = float(ref_size)
        self.roi_layers = nn.ModuleList([
            RoIAlign((roi_size, roi_size),
                     spatial_scale=1. / s,
                     sampling_ratio=sampling_ratio,
                     pool_mode='avg',
                     aligned=aligned) for s in self.featmap_strides
        ])
        self.out_channels = out_channels
        self.mlp = LinearProjNeck(
            in_channels * roi_size * roi_size,
            hid_channels,
            out_channels,
            with_avg_pool=False,
            dropout=dropout,
            init_cfg=mlp_init_cfg)

    def _roi_align(self, layer: RoIAlign, feat: Tensor,
                   rois: Tensor) -> Tensor:
        """``layer(feat, rois)``, with torchvision's kernel on CPU."""
        if feat.device.type == 'cpu' and self.cpu_kernel == 'torchvision':
            return tv_roi_align(feat, rois, layer.output_size,
                                layer.spatial_scale, layer.sampling_ratio,
                                layer.aligned)
        return layer(feat, rois)

    def _pool_by_level(self, feats: Sequence[Tensor], rois: Tensor,
                       view_size: float) -> Tuple[Tensor, Tensor]:
        """Multi-level RoIAlign with the rois grouped by level.

        One RoIAlign call per level and one concatenation: no per-level
        scatter into a full-size buffer (that copies the whole
        (N, C, roi_size, roi_size) tensor once per level).

        Returns:
            tuple[Tensor, Tensor]: ``pooled`` (N, C, roi_size, roi_size) in
            level order and ``order`` (N,) with ``pooled[i]`` the roi
            ``rois[order[i]]``.
        """
        if len(feats) != len(self.roi_layers):
            raise ValueError(f'RoIProjNeck: got {len(feats)} feature maps, '
                             f'configured for strides {self.featmap_strides}.')
        scale = view_size / self.ref_size
        levels = soco_level_assign(rois,
                                   [s * scale for s in self.assign_sizes],
                                   len(feats))
        order = torch.argsort(levels, stable=True)
        counts = torch.bincount(levels, minlength=len(feats)).tolist()
        rois = rois.to(feats[0].dtype)[order]
        chunks = []
        start = 0
        for feat, layer, num in zip(feats, self.roi_layers, counts):
            if num > 0:
                chunks.append(
                    self._roi_align(layer, feat, rois[start:start + num]))
            elif torch.is_grad_enabled():  # keep every level in the graph
                # (DDP without find_unused_parameters)
                chunks.append(feat.sum().mul(0.).expand(
                    0, feat.shape[1], *layer.output_size))
            start += num
        if not chunks:  # no rois and no grad
            return feats[0].new_zeros(
                (0, feats[0].shape[1], *self.roi_layers[0].output_size)), order
        return torch.cat(chunks, dim=0), order

    def pool(self, feats: Sequence[Tensor], rois: Tensor,
             view_size: float) -> Tensor:
        """Multi-level RoIAlign of all rois of the batch at once.

        Args:
            feats (Sequence[Tensor]): (B, C, H_l, W_l) maps, one per stride.
            rois (Tensor): (N, 5) ``[batch_idx, x1, y1, x2, y2]`` in view
                pixels.
            view_size (float): Side of the view (sqrt(H*W)) in pixels.

        Returns:
            Tensor: (N, C, roi_size, roi_size) pooled features.
        """
        pooled, order = self._pool_by_level(feats, rois, view_size)
        return pooled[torch.argsort(order)]

    def forward(self, feats: Sequence[Tensor], rois: Tensor,
                view_size: float) -> Tuple[Tensor]:
        """Embed regions (not normalised).

        The MLP acts on each roi alone, so it runs on the level-grouped
        features and only its small (N, out_channels) output is put back in
        roi order.

        Args:
            feats (Sequence[Tensor]): FPN maps (B, C, H_l, W_l).
            rois (Tensor): (N, 5) rois in view pixels.
            view_size (float): View side in pixels.

        Returns:
            tuple[Tensor]: one (N, out_channels) tensor.
        """
        pooled, order = self._pool_by_level(feats, rois, view_size)
        embed = self.mlp((pooled, ))[0]
        return (embed[torch.argsort(order)], )
