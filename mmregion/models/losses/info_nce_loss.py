"""InfoNCE with a queue of negatives (MoCo v2, CCOP's object-level term).

For a query ``q_i``, its positive key ``k_i`` and queue entries ``n_j`` (all
L2-normalised)::

    loss_i = -log( exp(q_i.k_i / tau)
                   / (exp(q_i.k_i / tau) + sum_j exp(q_i.n_j / tau)) )

the cross-entropy of ``[q_i.k_i, q_i.n_1, ...] / tau`` with label 0, as in
mmpretrain's ``ContrastiveHead`` + ``CrossEntropyLoss`` (image level) and
CCOP's ``roi_loss`` (object level, queries = regions).
"""
from typing import Optional

import torch
from torch import Tensor

from mmregion.registry import MODELS
from .utils import BaseLoss, weighted_reduce

__all__ = ['InfoNCELoss', 'info_nce_loss']


def info_nce_loss(query: Tensor,
                  key: Tensor,
                  queue: Tensor,
                  temperature: float = 0.2,
                  weight: Optional[Tensor] = None,
                  reduction: str = 'none',
                  avg_factor: Optional[float] = None) -> Tensor:
    """InfoNCE of each query against its key and a shared queue.

    Args:
        query (Tensor): (N, D) online embeddings (gradients flow here).
        key (Tensor): (N, D) positive keys, row i for query i (detach them
            for a momentum teacher; the function does not).
        queue (Tensor): (K, D) negatives shared by all queries (K may be 0).
        temperature (float): Softmax temperature tau. Defaults to 0.2.
        weight (Tensor, optional): (N,) per-query weights, e.g. a 0/1 mask of
            valid (non-padded) regions. Defaults to None.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'none'.
        avg_factor (float, optional): Divisor of the 'mean' (e.g. the number
            of valid queries). Defaults to the total weight (the plain mean
            without ``weight``).

    Returns:
        Tensor: (N,) losses for 'none', else a scalar. With N = 0 the
        'mean'/'sum' result is 0 and keeps a graph to ``query``.
    """
    if query.shape != key.shape or query.dim() != 2:
        raise ValueError('info_nce_loss: query and key must both be (N, D), '
                         f'got {tuple(query.shape)} and {tuple(key.shape)}.')
    if queue.dim() != 2 or queue.shape[1] != query.shape[1]:
        raise ValueError(f'info_nce_loss: queue must be (K, {query.shape[1]})'
                         f', got {tuple(queue.shape)}.')
    pos = (query * key).sum(dim=1, keepdim=True)  # (N, 1)
    neg = query @ queue.t()  # (N, K)
    logits = torch.cat([pos, neg], dim=1) / temperature
    # -log softmax(logits)[:, 0]
    loss = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return weighted_reduce(loss, weight, reduction, avg_factor)


@MODELS.register_module()
class InfoNCELoss(BaseLoss):
    """Module form of :func:`info_nce_loss`.

    Args:
        temperature (float): Softmax temperature. Defaults to 0.2 (MoCo v2,
            CCOP).
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.2,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        if temperature <= 0:
            raise ValueError(
                f'InfoNCELoss: temperature must be > 0, got {temperature}.')
        self.temperature = temperature

    def forward(self,
                query: Tensor,
                key: Tensor,
                queue: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss (arguments as in :func:`info_nce_loss`)."""
        return self.loss_weight * info_nce_loss(
            query,
            key,
            queue,
            temperature=self.temperature,
            weight=weight,
            reduction=self.get_reduction(reduction_override),
            avg_factor=avg_factor)
