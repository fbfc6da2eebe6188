"""Run a function on N local CPU ranks (gloo) and collect what it returns.

Used by the cross-rank tests: no GPU, no launcher, one free TCP port per
call. The ranks are forked (fast: the imports of the test process are
inherited), each initialises a gloo process group and runs
``fn(rank, world_size, *args)``; its return value (anything ``torch.save``
can write) comes back to the caller, one entry per rank. An exception in a
rank fails the call with that rank's traceback; a rank stuck in a collective
is stopped by the group's timeout.
"""
import datetime
import os
import os.path as osp
import socket
import tempfile
from typing import Any, Callable, List, Sequence

import torch
import torch.multiprocessing as mp

__all__ = ['free_port', 'run_on_ranks']


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, fn: Callable, args: Sequence,
           out_dir: str, timeout_s: float) -> None:
    import torch.distributed as tdist
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size))
    tdist.init_process_group(
        'gloo',
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s))
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, osp.join(out_dir, f'rank{rank}.pt'))
    finally:
        tdist.destroy_process_group()


def run_on_ranks(fn: Callable,
                 *args: Any,
                 world_size: int = 2,
                 timeout_s: float = 120.) -> List[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks.

    Args:
        fn (Callable): A module-level function (it is run in forked
            processes); its return value is saved with ``torch.save``.
        *args: Extra arguments of ``fn``.
        world_size (int): Number of ranks. Defaults to 2.
        timeout_s (float): Timeout of every collective. Defaults to 120.

    Returns:
        list: ``fn``'s return value of each rank, in rank order.
    """
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(
            _entry,
            args=(world_size, free_port(), fn, args, out_dir, timeout_s),
            nprocs=world_size,
            join=True,
            start_method='fork')
        return [
            torch.load(osp.join(out_dir, f'rank{r}.pt'), weights_only=False)
            for r in range(world_size)
        ]
