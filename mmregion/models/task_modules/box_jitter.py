"""CCOP's spatial-noise curriculum: jittered key boxes, harder over time."""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

from mmregion.registry import TASK_UTILS

__all__ = ['CurriculumBoxJitter']


def _lerp(span: Sequence[float], t: float) -> float:
    return float(span[0]) + t * (float(span[1]) - float(span[0]))


@TASK_UTILS.register_module()
class CurriculumBoxJitter(nn.Module):
    """Draw jittered copies of boxes with a difficulty that grows linearly.

    For a box with centre (x, y) and size (w, h) each candidate is::

        x' = x + w * u_x,  y' = y + h * u_y,      u ~ U(-0.5, 0.5) * mag_xy
        w' = w * exp(v_w), h' = h * exp(v_h),     v ~ U(-0.5, 0.5) * mag_wh

    clipped to the image; the original box is appended as the last
    candidate. A candidate is *valid* when its IoU with the original box is
    at least ``iou_thr`` (the original, IoU 1, always is). The algorithm
    then takes the hardest valid candidate as the positive (CCOP's adaptive
    part; github ChenhongyiYang/CCOP ``openselfsup/models/ccop.py``
    ``aug_boxes``).

    The schedule is linear in ``progress`` in [0, 1] (the fraction of the
    training run done, set by :class:`CCOPCurriculumHook`): ``iou_thr``,
    ``mag_xy`` and ``mag_wh`` go from the first to the second value of their
    pair. ``progress`` is a buffer, so it is saved with the model.

    Args:
        n_jitter (int): Jittered candidates per box (the original is added).
            Defaults to 10 (CCOP ``curr_params``).
        iou_thr (Sequence[float]): (start, end) IoU floor. Defaults to
            (0.8, 0.4) (CCOP).
        mag_xy (Sequence[float]): (start, end) centre-shift magnitude.
            Defaults to (0.15, 0.6) (CCOP ``jit_mag[:2]``).
        mag_wh (Sequence[float]): (start, end) log-size magnitude. Defaults
            to (0.35, 1.4) (CCOP ``jit_mag[2:]``).

    Examples:
        >>> jitter = CurriculumBoxJitter(n_jitter=4)
        >>> boxes = torch.tensor([[10., 10., 50., 40.]])
        >>> cands, valid = jitter(boxes, (64, 64))
        >>> cands.shape, valid.shape
        (torch.Size([1, 5, 4]), torch.Size([1, 5]))
    """

    def __init__(
        self,
        n_jitter: int = 10,
        iou_thr: Sequence[float] = (0.8, 0.4),
        mag_xy: Sequence[float] = (0.15, 0.6),
        mag_wh: Sequence[float] = (0.35, 1.4)
    ) -> None:
        super().__init__()
        for name, span in (('iou_thr', iou_thr), ('mag_xy', mag_xy), ('mag_wh',
                                                                      mag_wh)):
            if len(span) != 2:
                raise ValueError(f'CurriculumBoxJitter: {name} must be a '
                                 f'(start, end) pair, got {span}.')
        if n_jitter < 0:
            raise ValueError(
                f'CurriculumBoxJitter: n_jitter must be >= 0, got {n_jitter}.')
        self.n_jitter = n_jitter
        self.iou_thr_span = tuple(iou_thr)
        self.mag_xy_span = tuple(mag_xy)
        self.mag_wh_span = tuple(mag_wh)
        self.register_buffer('progress', torch.zeros(()))

    def set_progress(self, progress: float) -> None:
        """Set the fraction of training done (clamped to [0, 1])."""
        self.progress.fill_(min(max(float(progress), 0.), 1.))

    def current(self) -> Dict[str, float]:
        """dict: ``progress`` and the current ``iou_thr``, ``mag_xy``,
        ``mag_wh``."""
        t = float(self.progress)
        return dict(
            progress=t,
            iou_thr=_lerp(self.iou_thr_span, t),
            mag_xy=_lerp(self.mag_xy_span, t),
            mag_wh=_lerp(self.mag_wh_span, t))

    @torch.no_grad()
    def forward(self, boxes: Tensor,
                img_shape: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """Jitter every box at once.

        Args:
            boxes (Tensor): (..., 4) xyxy boxes in view pixels.
            img_shape (tuple[int, int]): (h, w) of the view.

        Returns:
            tuple[Tensor, Tensor]:

            - cands (..., n_jitter + 1, 4): candidates, the original last.
            - valid (..., n_jitter + 1) bool: IoU with the original >=
              ``iou_thr``.
        """
        cur = self.current()
        h, w = float(img_shape[0]), float(img_shape[1])
        ctr = (boxes[..., :2] + boxes[..., 2:]) * 0.5
        size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)
        shape = (*boxes.shape[:-1], self.n_jitter, 2)
        t_xy = (torch.rand(shape, device=boxes.device) - 0.5) * cur['mag_xy']
        t_wh = (torch.rand(shape, device=boxes.device) - 0.5) * cur['mag_wh']
        new_ctr = ctr[..., None, :] + size[..., None, :] * t_xy
        new_size = size[..., None, :] * t_wh.exp()
        jit = torch.cat([new_ctr - new_size / 2, new_ctr + new_size / 2],
                        dim=-1)
        upper = jit.new_tensor([w, h, w, h])
        jit = torch.minimum(jit.clamp(min=0), upper)
        cands = torch.cat([jit, boxes[..., None, :].to(jit.dtype)], dim=-2)
        ious = bbox_overlaps(
            cands, boxes[..., None, :].expand_as(cands), is_aligned=True)
        valid = ious >= cur['iou_thr']
        valid[..., -1] = True
        return cands, valid

    def extra_repr(self) -> str:
        return (f'n_jitter={self.n_jitter}, iou_thr={self.iou_thr_span}, '
                f'mag_xy={self.mag_xy_span}, mag_wh={self.mag_wh_span}')
