"""A ring-buffer queue of L2-normalised key embeddings (MoCo's negatives)."""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor

__all__ = ['FeatureQueue', 'gather_variable_length']


@torch.no_grad()
def gather_variable_length(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks; the first dim may differ per rank.

    Without a process group (or with one rank) ``x`` is returned as is.
    Every rank pads its tensor to the largest first dim, all-gathers it with
    :func:`mmengine.dist.all_gather` and drops the padding again.

    Args:
        x (Tensor): (N_rank, ...) tensor; N may be 0 and may differ per rank.

    Returns:
        Tensor: (sum_r N_r, ...) tensor in rank order.
    """
    if dist.get_world_size() <= 1:
        return x
    num = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    nums: List[Tensor] = dist.all_gather(num)
    sizes = [int(n.item()) for n in nums]
    max_num = max(sizes)
    if max_num == 0:
        return x
    padded = x.new_zeros((max_num, *x.shape[1:]))
    padded[:x.shape[0]] = x
    gathered: List[Tensor] = dist.all_gather(padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)], dim=0)


class FeatureQueue(nn.Module):
    """A first-in-first-out queue of ``length`` key embeddings of size ``dim``.

    The queue starts as L2-normalised Gaussian noise (MoCo's initialisation)
    and is a ring buffer: :meth:`enqueue` overwrites the oldest entries and
    wraps around the end, so the number of keys per call need not divide
    ``length`` (it may vary from call to call and from rank to rank, e.g. a
    variable number of regions). ``queue`` and ``ptr`` are buffers, so they
    are saved in checkpoints and a resumed run keeps its negatives.

    Args:
        length (int): Number of stored keys (MoCo v2: 65536).
        dim (int): Embedding size (MoCo v2: 128).
        overflow (str): keys of one call that pass the end of the queue:
            ``'wrap'`` (written at its start, every key enters; the default)
            or ``'drop'`` (dropped, the pointer restarts at 0: CCOP's region
            queue, ``models/ccop.py`` ``_roi_dequeue_and_enqueue``).

    Examples:
        >>> queue = FeatureQueue(length=8, dim=4)
        >>> queue.enqueue(torch.randn(3, 4))
        >>> queue.features.shape
        torch.Size([8, 4])
        >>> int(queue.ptr)
        3
    """

    def __init__(self, length: int, dim: int, overflow: str = 'wrap') -> None:
        super().__init__()
        if length <= 0 or dim <= 0:
            raise ValueError('FeatureQueue: length and dim must be positive, '
                             f'got length={length}, dim={dim}.')
        if overflow not in ('wrap', 'drop'):
            raise ValueError('FeatureQueue: overflow must be "wrap" or '
                             f'"drop", got "{overflow}".')
        self.overflow = overflow
        self.length = length
        self.dim = dim
        self.register_buffer('queue',
                             F.normalize(torch.randn(length, dim), dim=1))
        self.register_buffer('ptr', torch.zeros(1, dtype=torch.long))

    @property
    def features(self) -> Tensor:
        """Tensor: (length, dim) snapshot of the queue, detached.

        A copy: the loss can keep it for backward while :meth:`enqueue`
        writes into the buffer in place afterwards.
        """
        return self.queue.clone().detach()

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Gather ``keys`` from every rank and write them after the newest.

        Args:
            keys (Tensor): (N, dim) keys of this rank (N may be 0). They are
                stored as given (normalise them first).
        """
        if keys.dim() != 2 or keys.shape[1] != self.dim:
            raise ValueError('FeatureQueue.enqueue: keys must be (N, '
                             f'{self.dim}), got {tuple(keys.shape)}.')
        keys = gather_variable_length(keys.detach().to(self.queue.dtype))
        num = keys.shape[0]
        if num == 0:
            return
        ptr = int(self.ptr.item())
        if self.overflow == 'drop':  # up to the end, the rest dropped
            keys = keys[:self.length - ptr]
        elif num > self.length:  # only the newest `length` keys survive
            keys = keys[-self.length:]
        idx = (ptr + torch.arange(keys.shape[0],
                                  device=self.queue.device)) % self.length
        self.queue[idx] = keys
        self.ptr[0] = (ptr + keys.shape[0]) % self.length

    def extra_repr(self) -> str:
        return (f'length={self.length}, dim={self.dim}, '
                f'overflow={self.overflow!r}')
