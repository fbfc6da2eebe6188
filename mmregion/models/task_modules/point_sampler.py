"""Point sampling at matching image locations of a region in several views.

PLRC (Bai et al., CVPR 2022) contrasts *points* of regions rather than pooled
region features. A region kept in every view (``docs/design.md`` sec. 2) is
mapped back to the original image through each view's ``view_affine``; the
points are drawn uniformly inside the part of the region that is visible in
**all** views (the intersection of the mapped-back boxes), so that point ``p``
of region ``k`` lies at the same image location in every view. The points are
then mapped into each view's pixel coordinates and read from the dense feature
map with ``F.grid_sample``.

Note: the official code samples the points of a region independently in each
view (uniformly over the region's mask, ``PLRC/datasets/imagenet.py``); we
sample matching locations instead, which makes each point pair an exact
geometric correspondence (the positives are the same either way: all points of
the region).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmregion.registry import TASK_UTILS
from mmregion.structures import affine_boxes, affine_points


def affine_to_original(boxes: Tensor,
                       view_affine: Tensor,
                       eps: float = 1e-6) -> Tensor:
    """Map xyxy boxes from view pixels back to original-image pixels.

    Args:
        boxes (Tensor): ``(..., V, K, 4)`` xyxy boxes in view pixels.
        view_affine (Tensor): ``(..., V, 4)`` ``[sx, tx, sy, ty]`` with
            ``x' = sx * x + tx`` (``docs/design.md`` sec. 2).
        eps (float): smallest accepted ``|sx|``, ``|sy|``.

    Returns:
        Tensor: ``(..., V, K, 4)`` xyxy boxes in original-image pixels
        (``x1 <= x2`` also after a flip).
    """
    sx, sy = view_affine[..., 0], view_affine[..., 2]
    if (sx.abs() < eps).any() or (sy.abs() < eps).any():
        raise ValueError('view_affine has a zero scale (|sx| or |sy| < '
                         f'{eps}); the data sample key `view_affine` must '
                         'be [sx, tx, sy, ty] with non-zero sx, sy.')
    return affine_boxes(boxes, view_affine.unsqueeze(-2), inverse=True)


def points_in_views(points: Tensor, view_affine: Tensor) -> Tensor:
    """Map xy points from original-image pixels into each view.

    Args:
        points (Tensor): ``(B, ..., 2)`` xy in original pixels.
        view_affine (Tensor): ``(B, V, 4)``.

    Returns:
        Tensor: ``(B, V, ..., 2)`` xy in each view's pixels.
    """
    B, V = view_affine.shape[:2]
    extra = points.dim() - 2
    return affine_points(
        points.unsqueeze(1), view_affine.view(B, V, *([1] * extra), 4))


def sample_common_region_points(
        boxes: Tensor,
        valid: Tensor,
        view_affine: Tensor,
        num_points: int,
        min_size: float = 1.0,
        generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """Sample points of each region at the same image location in all views.

    Vectorised over batch x regions x points.

    Args:
        boxes (Tensor): ``(B, V, K, 4)`` xyxy in view pixels, aligned across
            views (row ``k`` is the same region), padded.
        valid (Tensor): ``(B, K)`` bool, False for padded regions.
        view_affine (Tensor): ``(B, V, 4)`` ``[sx, tx, sy, ty]``.
        num_points (int): points ``P`` per region.
        min_size (float): a region whose common part (in original pixels) is
            narrower or lower than this is marked invalid.
        generator (torch.Generator, optional): random generator.

    Returns:
        tuple[Tensor, Tensor]: points ``(B, V, K, P, 2)`` xy in view pixels
        and valid ``(B, K)`` bool (input validity AND a non-empty common
        part). Points of invalid regions are finite (0) and must be masked.
    """
    if boxes.dim() != 4 or boxes.size(-1) != 4:
        raise ValueError('boxes must be (B, V, K, 4), got '
                         f'{tuple(boxes.shape)}')
    B, V, K, _ = boxes.shape
    if view_affine.shape != (B, V, 4):
        raise ValueError(f'view_affine must be ({B}, {V}, 4), got '
                         f'{tuple(view_affine.shape)}')
    boxes = boxes.float()
    orig = affine_to_original(boxes, view_affine.float())  # (B, V, K, 4)
    common = torch.cat([orig[..., :2].amax(1), orig[..., 2:].amin(1)], -1)
    wh = common[..., 2:] - common[..., :2]  # (B, K, 2)
    valid = valid.bool() & (
        wh >= min_size).all(-1) & torch.isfinite(common).all(-1)
    wh = wh.clamp(min=0)
    u = torch.rand((B, K, num_points, 2),
                   generator=generator,
                   device=boxes.device,
                   dtype=boxes.dtype)
    pts = common[:, :, None, :2] + u * wh[:, :, None]  # (B, K, P, 2)
    pts = torch.where(valid[:, :, None, None], pts, torch.zeros_like(pts))
    view_pts = points_in_views(pts, view_affine.float())  # (B, V, K, P, 2)
    view_pts = torch.where(valid[:, None, :, None, None], view_pts,
                           torch.zeros_like(view_pts))
    return view_pts, valid


def sample_point_features(feats: Tensor,
                          points: Tensor,
                          img_shape: Tuple[int, int],
                          align_corners: bool = False) -> Tensor:
    """Read features at xy pixel locations of a dense map (bilinear).

    With ``align_corners=False`` the normalised coordinate ``-1`` is the left
    edge of feature cell 0 and ``+1`` the right edge of the last cell, i.e.
    image pixel ``x`` maps to ``2 * x / W - 1`` whatever the stride (cell
    ``i`` of a stride-``s`` map covers pixels ``[i*s, (i+1)*s)``).

    Args:
        feats (Tensor): ``(N, C, h, w)`` dense features of the image.
        points (Tensor): ``(N, M, 2)`` xy in the image's pixels.
        img_shape (tuple[int, int]): ``(H, W)`` of the input image.
        align_corners (bool): passed to ``F.grid_sample``; with True the
            pixel grid is taken as the cell centres of the corner cells.

    Returns:
        Tensor: ``(N, M, C)``.
    """
    H, W = img_shape
    N, M, _ = points.shape
    scale = points.new_tensor([W, H])
    if align_corners:
        h, w = feats.shape[-2:]
        # cell centres of the corner cells are +-1
        stride = points.new_tensor([W / w, H / h])
        grid = (points - stride / 2) / (scale - stride).clamp(min=1e-6)
        grid = grid * 2 - 1
    else:
        grid = points / scale * 2 - 1
    out = F.grid_sample(
        feats,
        grid.view(N, M, 1, 2).to(feats.dtype),
        mode='bilinear',
        padding_mode='border',
        align_corners=align_corners)  # (N, C, M, 1)
    return out.squeeze(-1).transpose(1, 2)


@TASK_UTILS.register_module()
class RegionPointSampler:
    """Samples ``num_points`` matching points per region per view.

    Args:
        num_points (int): points per region (``keep_point=16`` in
            ``PLRC/models/builder.py``). Defaults to 16.
        min_size (float): minimum side (original pixels) of the part of a
            region visible in all views; smaller regions are masked.
            Defaults to 1.0.
        align_corners (bool): ``F.grid_sample`` convention used by
            :meth:`read`. Defaults to False (pixel edges, see
            :func:`sample_point_features`).
    """

    def __init__(self,
                 num_points: int = 16,
                 min_size: float = 1.0,
                 align_corners: bool = False) -> None:
        if num_points < 1:
            raise ValueError(f'num_points must be >= 1, got {num_points}')
        self.num_points = num_points
        self.min_size = min_size
        self.align_corners = align_corners

    def sample(
            self,
            boxes: Tensor,
            valid: Tensor,
            view_affine: Tensor,
            generator: Optional[torch.Generator] = None
    ) -> Tuple[Tensor, Tensor]:
        """See :func:`sample_common_region_points`.

        Returns:
            tuple[Tensor, Tensor]: ``(B, V, K, P, 2)`` points, ``(B, K)``
            valid.
        """
        return sample_common_region_points(boxes, valid, view_affine,
                                           self.num_points, self.min_size,
                                           generator)

    def read(self, feats: Tensor, points: Tensor,
             img_shape: Tuple[int, int]) -> Tensor:
        """Read point features of one view.

        Args:
            feats (Tensor): ``(B, C, h, w)``.
            points (Tensor): ``(B, K, P, 2)`` xy pixels of this view.
            img_shape (tuple[int, int]): ``(H, W)`` of the view.

        Returns:
            Tensor: ``(B, K, P, C)``.
        """
        B, K, P, _ = points.shape
        out = sample_point_features(feats, points.reshape(B, K * P, 2),
                                    img_shape, self.align_corners)
        return out.view(B, K, P, -1)
