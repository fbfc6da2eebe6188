"""Point-level region contrast of PLRC in the supervised-contrastive form."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmregion.registry import MODELS
from .utils import BaseLoss, weighted_reduce


def _group_sums(key: Tensor, x: Tensor,
                weight: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-row sums over the rows sharing a key.

    Args:
        key (Tensor): ``(N, k)`` group key of each row.
        x (Tensor): ``(N, C)``.
        weight (Tensor): ``(N,)`` row weights (0 drops a row).

    Returns:
        tuple[Tensor, Tensor]: for each row, ``sum_j w_j x_j`` ``(N, C)`` and
        ``sum_j w_j`` ``(N,)`` over the rows ``j`` with its key.
    """
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    sums = x.new_zeros(len(uniq), x.size(1)).index_add(0, inv,
                                                       x * weight[:, None])
    counts = weight.new_zeros(len(uniq)).index_add(0, inv, weight)
    return sums[inv], counts[inv]


def point_supcon_loss(features: Tensor,
                      labels: Tensor,
                      valid: Optional[Tensor] = None,
                      view_ids: Optional[Tensor] = None,
                      temperature: float = 0.2,
                      base_temperature: float = 0.07,
                      cross_view_only: bool = False,
                      weight: Optional[Tensor] = None,
                      reduction: str = 'none',
                      avg_factor: Optional[float] = None) -> Tensor:
    """Per-anchor SupCon loss over a set of point embeddings.

    For every anchor ``a`` (all valid points, the 'all' contrast mode of the
    official ``SupConLoss.compute_cont_loss``)::

        l_a = -(tau / tau_base) / |P(a)| * sum_{p in P(a)}
              log( exp(z_a . z_p / tau)
                   / sum_{c != a, c valid} exp(z_a . z_c / tau) )

    where ``P(a)`` are the other valid points with the same label (the same
    region of the same image; with ``cross_view_only`` only those of another
    view) and every other valid point - other regions of the same image and of
    other images - is a negative.

    Args:
        features (Tensor): ``(N, C)`` L2-normalised point embeddings.
        labels (Tensor): ``(N,)`` long region labels (unique per image and
            region).
        valid (Tensor, optional): ``(N,)`` bool; invalid (padded) points are
            neither anchors nor contrasted. Defaults to all valid.
        view_ids (Tensor, optional): ``(N,)`` long view index of each point,
            needed for ``cross_view_only``.
        temperature (float): tau. Defaults to 0.2 (official code).
        base_temperature (float): tau_base of the ``tau / tau_base`` scale.
            Defaults to 0.07 (official code).
        cross_view_only (bool): positives only from other views. Defaults to
            False (positives from both views, as the official code).
        weight (Tensor, optional): ``(N,)`` per-anchor weights.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): divisor of the 'mean'; defaults to the
            (weighted) number of anchors that count (valid with at least one
            positive).

    Returns:
        Tensor: per-anchor loss ``(N,)`` (0 where no positive or invalid) for
        'none', else a scalar.
    """
    N = features.size(0)
    device = features.device
    if valid is None:
        valid = torch.ones(N, dtype=torch.bool, device=device)
    valid = valid.bool()
    if cross_view_only and view_ids is None:
        raise ValueError('cross_view_only=True needs view_ids')
    # Denominator: log-sum-exp over the contrast set (c != a, c valid). The
    # only (N, N) tensor is the logits matrix, masked in place (a large
    # finite fill, not -inf, keeps rows without any contrast item finite in
    # the forward and the backward pass).
    logits = features @ features.t() / temperature  # (N, N)
    fill = torch.finfo(logits.dtype).min / 2
    logits.masked_fill_(~valid[None, :], fill)
    logits.diagonal().fill_(fill)
    lse = torch.logsumexp(logits, dim=1)  # (N,)
    # Numerator: sum_{p in P(a)} z_a . z_p = z_a . (sum of the valid points
    # of a's region [of the other views]) - [z_a . z_a], in O(N C) via
    # per-region sums instead of an (N, N) positive mask.
    vf = valid.to(features.dtype)
    pos_sum, num_pos = _group_sums(labels[:, None], features, vf)
    if cross_view_only:
        same_view = torch.stack([labels, view_ids.to(labels)], 1)
        sv_sum, sv_num = _group_sums(same_view, features, vf)
        pos_sum, num_pos = pos_sum - sv_sum, num_pos - sv_num
    else:  # the anchor itself is not a positive
        pos_sum = pos_sum - features * vf[:, None]
        num_pos = num_pos - vf
    has_pos = valid & (num_pos > 0.5)
    pos_logit_sum = (features * pos_sum).sum(1) / temperature
    mean_log_prob_pos = pos_logit_sum / num_pos.clamp(min=1) - lse
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    loss = torch.where(has_pos, loss, torch.zeros_like(loss))
    return weighted_reduce(loss, weight, reduction, avg_factor, mask=has_pos)


@MODELS.register_module()
class PointInfoNCELoss(BaseLoss):
    """Point-level InfoNCE (SupCon form) of PLRC.

    Args:
        temperature (float): Defaults to 0.2 (``SupConLoss.build_loss`` in
            ``PLRC/models/plrc_loss.py``).
        base_temperature (float): Defaults to 0.07 (same file).
        cross_view_only (bool): positives only from another view. Defaults to
            False (the official code counts the points of the same region
            in both views as positives).
        normalize (bool): L2-normalise the inputs. Defaults to True.
        reduction (str): 'mean' | 'sum' | 'none'. Defaults to 'mean' (mean
            over the anchors that have a positive).
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.2,
                 base_temperature: float = 0.07,
                 cross_view_only: bool = False,
                 normalize: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.cross_view_only = cross_view_only
        self.normalize = normalize

    def forward(self,
                features: Tensor,
                labels: Tensor,
                valid: Optional[Tensor] = None,
                view_ids: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            features (Tensor): ``(N, C)`` point embeddings.
            labels (Tensor): ``(N,)`` region labels.
            valid (Tensor, optional): ``(N,)`` bool.
            view_ids (Tensor, optional): ``(N,)`` view index of each point.
            weight (Tensor, optional): ``(N,)`` per-anchor weights.
            avg_factor (float, optional): divisor of the mean; defaults to
                the (weighted) number of anchors with a positive.
            reduction_override (str, optional): overrides ``reduction``.

        Returns:
            Tensor: the loss (scalar unless reduction is 'none').
        """
        reduction = self.get_reduction(reduction_override)
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return self.loss_weight * point_supcon_loss(
            features,
            labels,
            valid,
            view_ids,
            self.temperature,
            self.base_temperature,
            self.cross_view_only,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor)
