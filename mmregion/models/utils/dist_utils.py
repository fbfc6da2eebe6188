"""Gather the rows of a tensor from all ranks, with an optional gradient.

Used by the contrastive losses whose negatives may come from the whole
global batch (``SCELoss``/``LocSCELoss(gather_negatives=True)``).
"""
from typing import List, Tuple

import torch
import torch.distributed as torch_dist
from mmengine import dist
from torch import Tensor

__all__ = ['all_gather_rows']


def _sizes(x: Tensor) -> List[int]:
    """The first dim of ``x`` on every rank."""
    num = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    return [int(n.item()) for n in dist.all_gather(num)]


def _gather_padded(x: Tensor, sizes: List[int]) -> Tensor:
    """All-gather ``x`` (N_r, ...), padded to the largest N_r, unpadded."""
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[:x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    torch_dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


class _AllGatherRowsWithGrad(torch.autograd.Function):
    """Forward: concatenation of every rank's rows. Backward: the gradient
    of the sum of all ranks' losses w.r.t. this rank's rows (an all-reduce
    of the global gradient, then this rank's slice)."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: List[int], start: int) -> Tensor:
        ctx.start, ctx.num = start, x.shape[0]
        return _gather_padded(x.detach(), sizes)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        torch_dist.all_reduce(grad)
        return grad[ctx.start:ctx.start + ctx.num], None, None


def all_gather_rows(x: Tensor, with_grad: bool = False) -> Tuple[Tensor, int]:
    """Concatenate ``x`` over all ranks (rank order); N may differ per rank.

    Args:
        x (Tensor): (N_rank, ...) tensor of this rank.
        with_grad (bool): Let the gradient flow back to ``x``: the backward
            all-reduces (sums) the gradient of the gathered tensor over the
            ranks, so each rank receives the gradient of the *sum of all
            ranks' losses* w.r.t. its own rows (with DDP's gradient average
            this equals the gradient of one process holding the whole
            batch). Without it the gathered tensor is detached.

    Returns:
        tuple[Tensor, int]: ``(gathered (sum_r N_r, ...), offset)`` where
        ``offset`` is the index of this rank's first row in ``gathered``.
        Without a process group (or with one rank): ``(x, 0)``.
    """
    if dist.get_world_size() <= 1:
        return x, 0
    sizes = _sizes(x)
    start = sum(sizes[:dist.get_rank()])
    if with_grad:
        return _AllGatherRowsWithGrad.apply(x, sizes, start), start
    return _gather_padded(x.detach(), sizes), start
