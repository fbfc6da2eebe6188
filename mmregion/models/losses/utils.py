"""The one loss contract of mmregion (mmdet's), shared by every loss.

Every registered loss in :mod:`mmregion.models.losses` has two forms:

* a **functional form** ``xxx_loss(inputs..., hyper-parameters...,
  weight=None, reduction='none', avg_factor=None) -> Tensor``. With the
  default ``reduction='none'`` it returns the per-row (per-element) loss,
  rows that take no part (padding, no positive, ...) being 0; ``'mean'`` /
  ``'sum'`` reduce it with :func:`weighted_reduce`, i.e. mmdet's
  ``weight_reduce_loss``;
* a **module** registered in ``MODELS`` with ``reduction`` ('none' | 'mean'
  | 'sum') and ``loss_weight``, whose ``forward(inputs..., weight=None,
  avg_factor=None, reduction_override=None)`` returns ``loss_weight *``
  the functional form reduced by ``reduction_override or reduction``.

``weight`` has the shape of the per-row loss and multiplies it. ``'mean'``
divides the weighted sum by ``avg_factor`` (plus mmdet's eps), by default
the total weight of the rows that take part (the plain mean when a loss
masks nothing and no weight is given). ``avg_factor`` with ``'sum'`` is an
error, as in mmdet. ``tests/test_models/test_losses/test_loss_contract.py``
checks all of this for every registered loss.
"""
from typing import Optional

import torch.nn as nn
from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor

__all__ = ['REDUCTIONS', 'check_reduction', 'weighted_reduce', 'BaseLoss']

REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(owner: str, reduction: str) -> str:
    """Return ``reduction`` if it is one of :data:`REDUCTIONS`.

    Raises:
        ValueError: naming ``owner`` and the bad value.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f'{owner}: reduction must be one of {REDUCTIONS}, '
                         f'got {reduction!r}.')
    return reduction


def weighted_reduce(loss: Tensor,
                    weight: Optional[Tensor] = None,
                    reduction: str = 'none',
                    avg_factor: Optional[float] = None,
                    mask: Optional[Tensor] = None) -> Tensor:
    """mmdet's ``weight_reduce_loss`` over the rows that take part.

    Args:
        loss (Tensor): (N, ...) per-row loss, 0 where ``mask`` is False.
        weight (Tensor, optional): per-row weights, the shape of ``loss``.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): Divisor of the 'mean'. Defaults to the
            sum of ``mask * weight`` (the plain mean without both).
        mask (Tensor, optional): bool, the shape of ``loss``: the rows that
            take part (the others must already be 0 in ``loss``).

    Returns:
        Tensor: ``loss * weight * mask`` for 'none', else a scalar. An empty
        ``loss`` gives 0 (with its graph), not NaN.
    """
    check_reduction('weighted_reduce', reduction)
    if mask is not None:
        mask = mask.to(loss.dtype)
        weight = mask if weight is None else mask * weight.to(loss.dtype)
    elif weight is not None:
        weight = weight.to(loss.dtype)
    if reduction == 'mean' and avg_factor is None:
        if weight is not None:
            avg_factor = weight.sum()
        elif loss.numel() == 0:
            return loss.sum()
    return weight_reduce_loss(
        loss, weight, reduction=reduction, avg_factor=avg_factor)


class BaseLoss(nn.Module):
    """Base of the loss modules: ``reduction`` and ``loss_weight``.

    Args:
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(type(self).__name__, reduction)
        self.loss_weight = loss_weight

    def get_reduction(self, reduction_override: Optional[str] = None) -> str:
        """``reduction_override`` if given (checked), else ``reduction``."""
        if reduction_override is None:
            return self.reduction
        return check_reduction(type(self).__name__, reduction_override)
