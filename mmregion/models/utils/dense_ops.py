"""Dense-map helpers: per-location modules and exact bilinear upsampling.

``F.interpolate(..., mode='bilinear', align_corners=False)`` is linear, so
rows of an upsampled map (and their dot products with another map) can be
computed on the small map with the interpolation weights, without building
the ``S x S`` map (PLRC's distillation, :class:`PLRCHead`).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'bilinear_matrix', 'read_upsampled_rows', 'upsampled_affinity',
    'dense_apply'
]


def bilinear_matrix(n_in: int,
                    n_out: int,
                    device=None,
                    dtype=torch.float32) -> Tensor:
    """The ``(n_out, n_in)`` matrix of 1-D linear upsampling.

    ``A @ v`` equals ``F.interpolate(v, n_out, mode='linear',
    align_corners=False)`` (the same weights, computed by ``interpolate``
    itself on the identity); bilinear upsampling of an ``h x w`` map is
    ``A_h @ X @ A_w.T``.
    """
    eye = torch.eye(n_in, device=device, dtype=dtype)[None]
    return F.interpolate(
        eye, size=n_out, mode='linear', align_corners=False)[0].t()


def read_upsampled_rows(x: Tensor, idx: Tensor, size: int) -> Tensor:
    """Rows ``idx`` of ``x`` bilinearly upsampled to ``size x size``.

    Equals ``F.interpolate(x, (size, size), mode='bilinear',
    align_corners=False).flatten(2).transpose(1, 2).gather(1, idx)`` without
    building the upsampled map: output cell ``(r, c)`` is the weighted sum of
    the ``h x w`` input cells with the weights ``A_h[r] (x) A_w[c]``
    (:func:`bilinear_matrix`), one batched matmul. (Faster than
    ``grid_sample`` at the cell centres on CPU when ``C`` is large, e.g.
    4096 prototype logits, forward and backward.)

    Args:
        x (Tensor): ``(B, C, h, w)``.
        idx (Tensor): ``(B, M)`` long row-major indices into ``size*size``.
        size (int): side of the upsampled grid.

    Returns:
        Tensor: ``(B, M, C)``.
    """
    B, C, h, w = x.shape
    a_h = bilinear_matrix(h, size, x.device, x.dtype)  # (S, h)
    a_w = bilinear_matrix(w, size, x.device, x.dtype)  # (S, w)
    row = torch.div(idx, size, rounding_mode='floor')
    weights = a_h[row][..., :, None] * a_w[idx % size][..., None, :]
    return weights.flatten(2) @ x.flatten(2).transpose(1, 2)


def upsampled_affinity(rows: Tensor, ref: Tensor, size: int) -> Tensor:
    """``rows . up(ref)``: dot products with all ``size*size`` cells of
    ``ref`` bilinearly upsampled.

    Computed as ``up(rows . ref)`` (upsampling is linear:
    ``A_h @ a @ A_w.T``).

    Args:
        rows (Tensor): ``(B, M, C)``.
        ref (Tensor): ``(B, C, h, w)``.
        size (int): side ``S`` of the upsampled grid.

    Returns:
        Tensor: ``(B, M, S*S)``.
    """
    B, M, _ = rows.shape
    h, w = ref.shape[-2:]
    a = (rows @ ref.flatten(2)).view(B * M, h, w)
    a_h = bilinear_matrix(h, size, a.device, a.dtype)  # (S, h)
    a_w = bilinear_matrix(w, size, a.device, a.dtype)  # (S, w)
    return (a_h @ a @ a_w.t()).view(B, M, size * size)


def dense_apply(module: nn.Module, feats: Tensor) -> Tuple[Tensor, ...]:
    """Apply a per-location module to every location of a dense map.

    Args:
        module (nn.Module): takes and returns a tuple of tensors (the neck
            convention), ``((N, C), ) -> ((N, D_1), ...)``, e.g.
            :class:`PointProjNeck`, :class:`DINOProjNeck`.
        feats (Tensor): ``(B, C, h, w)``.

    Returns:
        tuple[Tensor]: ``(B, D_i, h, w)`` per output.
    """
    B, C, h, w = feats.shape
    out = module((feats.permute(0, 2, 3, 1).reshape(B * h * w, C), ))
    return tuple(y.view(B, h, w, -1).permute(0, 3, 1, 2) for y in out)
