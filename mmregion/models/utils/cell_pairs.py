"""Cell pairs of PLRC's point-affinity distillation (the release's
``overlap()``): which cells of two views show the same image location.

Each view is divided into ``size x size`` cells; a cell of one view and a cell
of the other are a pair when their centres, mapped to the original image, lie
within ``pos_ratio`` times the larger cell diagonal (PLRC
``PLRC/models/utils.py`` ``overlap()``, read through ``torch.nonzero`` by
``plrc_loss.py``). Used by :class:`PLRCHead`.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'dense_cell_pairs', 'pair_frame_scale', 'keep_random_pairs', 'unique_cells'
]


def _cell_centres(aff: Tensor, size: int, length: int, axis: int) -> Tensor:
    """Centres of the ``size`` cells of a view along one axis, in original
    pixels: ``(B, size)`` from the ``(B, 4)`` affine ``[sx, tx, sy, ty]``."""
    ar = torch.arange(size, device=aff.device, dtype=aff.dtype) + 0.5
    s, t = aff[:, 2 * axis, None], aff[:, 2 * axis + 1, None]
    return (ar[None] * (length / size) - t) / s


def dense_cell_pairs(
        view_affine: Tensor,
        img_shape: Tuple[int, int],
        size: int,
        src: int,
        dst: int,
        pos_ratio: float = 0.5,
        frame_scale: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Every (``src`` cell, ``dst`` cell) pair of the official ``overlap()``.

    Both views are divided into ``size x size`` cells. A cell ``i`` of view
    ``src`` and a cell ``j`` of view ``dst`` are paired when their centres,
    mapped to the original image, are closer than ``pos_ratio`` times the
    larger of the two views' cell diagonals (PLRC ``PLRC/models/utils.py``
    ``overlap()``, used by ``plrc_loss.py`` through ``torch.nonzero``): a
    cell has as many partners as lie within that radius (none, one or
    several). Distances and diagonals are measured in original pixels
    multiplied by ``frame_scale`` per axis; the release works in crop
    coordinates normalised by the original image's ``(W - 1, H - 1)``
    (``datasets/transforms.py``), i.e. ``frame_scale = (1 / (W - 1), 1 /
    (H - 1))``, an anisotropic frame for non-square images.

    The search is separable: per axis only the partners within the radius
    along that axis are candidates (``K_x``, ``K_y`` of them at most), so the
    cost is ``B * size^2 * K_x * K_y``, not ``B * size^4``.

    Args:
        view_affine (Tensor): ``(B, V, 4)`` ``[sx, tx, sy, ty]``.
        img_shape (tuple[int, int]): ``(H, W)`` of the views.
        size (int): cells per side.
        src (int): source (student) view index.
        dst (int): destination (target) view index.
        pos_ratio (float): distance threshold in cell diagonals.
        frame_scale (Tensor, optional): ``(B, 2)`` x and y multipliers of
            original pixels. Defaults to None (original pixels).

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``(B, M)`` long row-major cell
        indices of ``src`` and of ``dst``, and the ``(B, M)`` bool mask of
        the real pairs (``M``: the largest pair count of the batch, at least
        1; an image's pairs come first, ordered by ``src`` cell).
    """
    H, W = img_shape
    aff = view_affine.float()
    B = aff.size(0)
    a_s, a_d = aff[:, src], aff[:, dst]  # (B, 4)
    if frame_scale is None:
        frame_scale = aff.new_ones(B, 2)
    frame_scale = frame_scale.to(aff)
    # cell diagonals in the frame: cell side / |scale of the view|
    diag = [
        torch.sqrt((W / size / a[:, 0] * frame_scale[:, 0])**2 +
                   (H / size / a[:, 2] * frame_scale[:, 1])**2)
        for a in (a_s, a_d)
    ]
    max_diag = torch.maximum(*diag)  # (B, )
    axes = []
    for axis, length in ((0, W), (1, H)):  # x, then y
        c_s = _cell_centres(a_s, size, length, axis) * frame_scale[:, axis,
                                                                   None]
        c_d = _cell_centres(a_d, size, length, axis) * frame_scale[:, axis,
                                                                   None]
        delta = c_s[:, :, None] - c_d[:, None, :]  # (B, S_src, S_dst)
        # candidates along this axis (a margin for the rounding of the
        # exact test below, which decides)
        cand = delta.abs() <= max_diag[:, None, None] * pos_ratio * (1 + 1e-5)
        k = max(int(cand.sum(2).max()), 1)
        part = cand.float().topk(k, dim=2).indices  # (B, S, k)
        axes.append((part, cand.gather(2, part), delta.gather(2, part)))
    (jx, vx, dx), (jy, vy, dy) = axes
    # (B, S_y, S_x, K_y, K_x): src cell (iy, ix), candidate (ky, kx)
    dist = torch.sqrt(dy[:, :, None, :, None]**2 + dx[:, None, :, None, :]**2)
    ok = (
        vy[:, :, None, :, None] & vx[:, None, :, None, :]
        & (dist / max_diag.view(B, 1, 1, 1, 1) < pos_ratio))
    S = size
    Ky, Kx = jy.size(2), jx.size(2)
    ar = torch.arange(S, device=aff.device)
    src_idx = (ar.view(1, S, 1, 1, 1) * S + ar.view(1, 1, S, 1, 1)).expand(
        B, S, S, Ky, Kx)
    dst_idx = jy[:, :, None, :, None] * S + jx[:, None, :, None, :]
    ok, src_idx, dst_idx = (t.reshape(B, -1) for t in (ok, src_idx, dst_idx))
    M = max(int(ok.sum(1).max()), 1)
    order = torch.sort(
        ok.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :M]
    return src_idx.gather(1,
                          order), dst_idx.gather(1,
                                                 order), ok.gather(1, order)


def pair_frame_scale(frame: str, ori_shape: Optional[Tensor],
                     batch_size: int) -> Optional[Tensor]:
    """``(B, 2)`` multipliers of original pixels for :func:`dense_cell_pairs`.

    Args:
        frame (str): ``'normalized'`` (the release: original coordinates
            divided by the image's ``(W - 1, H - 1)``) or ``'pixels'``
            (original pixels, isotropic: None).
        ori_shape (Tensor, optional): ``(B, 2)`` original ``(h, w)``, needed
            by ``'normalized'``.
        batch_size (int): B, to check ``ori_shape``.

    Returns:
        Tensor | None: ``1 / (W - 1), 1 / (H - 1)`` per image, or None.
    """
    if frame == 'pixels':
        return None
    if ori_shape is None or ori_shape.shape != (batch_size, 2):
        raise ValueError(
            "PLRCHead: distill_pair_frame='normalized' needs the "
            'original (h, w) of every image (the "ori_shape" metainfo: '
            'load images with LoadImageFromFile(Safe) and keep '
            "'ori_shape' in PackRegionInputs.meta_keys), or set "
            "distill_pair_frame='pixels'.")
    hw = ori_shape.float()
    return 1. / (hw[:, [1, 0]] - 1).clamp(min=1.)


def keep_random_pairs(src: Tensor, dst: Tensor, ok: Tensor,
                      num: Optional[int]) -> Tuple[Tensor, Tensor, Tensor]:
    """All pairs (``num=None``), or ``num`` random real pairs per image.

    Args:
        src, dst (Tensor): ``(B, M)`` cell indices of the pairs.
        ok (Tensor): ``(B, M)`` bool, the real pairs (first in each row).
        num (int, optional): pairs kept per image.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``(B, min(M, num))`` each.
    """
    if num is None or num >= ok.size(1):
        return src, dst, ok
    score = ok.float() + torch.rand(ok.shape, device=ok.device)
    keep = score.topk(num, dim=1).indices
    return src.gather(1, keep), dst.gather(1, keep), ok.gather(1, keep)


def unique_cells(idx: Tensor, ok: Tensor,
                 num_cells: int) -> Tuple[Tensor, Tensor]:
    """The distinct cells of ``idx`` among the real pairs ``ok``.

    Args:
        idx (Tensor): ``(B, M)`` long cell indices.
        ok (Tensor): ``(B, M)`` bool, the real pairs.
        num_cells (int): cells per view.

    Returns:
        tuple[Tensor, Tensor]: ``(B, U)`` distinct cell indices and the
        ``(B, M)`` position of each pair's cell among them (a cell's vectors
        are computed once).
    """
    B = idx.size(0)
    count = idx.new_zeros(B, num_cells, dtype=torch.float32)
    count.scatter_add_(1, idx, ok.float())
    present = count > 0
    U = max(int(present.sum(1).max()), 1)
    cells = present.float().topk(U, dim=1).indices  # (B, U), distinct
    pos = torch.zeros_like(count, dtype=torch.long)
    pos.scatter_(1, cells, torch.arange(U, device=idx.device).expand(B, U))
    return cells, pos.gather(1, idx)
