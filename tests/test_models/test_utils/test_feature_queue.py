import os

import pytest
import torch
import torch.multiprocessing as mp

from mmregion.models.utils import FeatureQueue


def test_feature_queue_init_normalised_and_in_state_dict():
    queue = FeatureQueue(length=6, dim=4)
    assert queue.features.shape == (6, 4)
    assert torch.allclose(queue.features.norm(dim=1), torch.ones(6))
    assert set(queue.state_dict()) == {'queue', 'ptr'}
    other = FeatureQueue(length=6, dim=4)
    other.enqueue(torch.ones(2, 4))
    queue.load_state_dict(other.state_dict())
    assert torch.equal(queue.queue, other.queue)
    assert int(queue.ptr) == 2


def test_feature_queue_ring_buffer_wraps():
    queue = FeatureQueue(length=5, dim=2)
    keys = torch.arange(14, dtype=torch.float32)[:, None].repeat(1, 2)
    queue.enqueue(keys[:3])  # 0,1,2 -> slots 0..2
    queue.enqueue(keys[3:7])  # 3,4,5,6 -> slots 3,4,0,1 (wrap)
    assert int(queue.ptr) == 2
    assert queue.queue[:, 0].tolist() == [5, 6, 2, 3, 4]
    queue.enqueue(keys[:0])  # empty is a no-op
    assert int(queue.ptr) == 2
    queue.enqueue(keys[7:14])  # more than length: newest 5 survive
    assert sorted(queue.queue[:, 0].tolist()) == [9, 10, 11, 12, 13]
    assert int(queue.ptr) == 2  # 2 + 5 written


def test_feature_queue_snapshot_survives_enqueue_for_backward():
    queue = FeatureQueue(length=4, dim=3)
    query = torch.randn(2, 3, requires_grad=True)
    logits = query @ queue.features.t()
    queue.enqueue(torch.randn(4, 3))  # in-place write before backward
    logits.sum().backward()  # must not raise a version-counter error
    assert query.grad is not None and not queue.features.requires_grad


def test_feature_queue_bad_input():
    with pytest.raises(ValueError, match='length and dim'):
        FeatureQueue(0, 4)
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        FeatureQueue(4, 4).enqueue(torch.randn(2, 3))


def _dist_worker(rank, world_size, port, out):
    import torch.distributed as tdist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    tdist.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.manual_seed(0)
    queue = FeatureQueue(length=8, dim=2)
    # rank 0 gives 1 key, rank 1 gives 3 keys
    n = 1 if rank == 0 else 3
    keys = torch.full((n, 2), float(rank + 1))
    queue.enqueue(keys)
    out[rank] = (int(queue.ptr), queue.queue[:4, 0].tolist())
    tdist.destroy_process_group()


@pytest.mark.slow
def test_feature_queue_gathers_variable_length_across_ranks():
    manager = mp.Manager()
    out = manager.dict()
    port = 29500 + os.getpid() % 1000
    mp.start_processes(
        _dist_worker,
        args=(2, port, out),
        nprocs=2,
        join=True,
        start_method='fork')
    for rank in range(2):
        ptr, head = out[rank]
        assert ptr == 4
        assert head == [1., 2., 2., 2.]


def test_drop_overflow_is_ccop_region_queue():
    """overflow='drop': CCOP ``_roi_dequeue_and_enqueue`` (loop form): write
    ``min(n, length - ptr)`` keys at ``ptr``, drop the rest, then
    ``ptr = (ptr + written) % length``."""
    queue = FeatureQueue(length=6, dim=2, overflow='drop')
    ref, ptr = queue.queue.clone(), 0
    for n in (4, 5, 3, 6, 1):
        keys = torch.randn(n, 2)
        queue.enqueue(keys)
        valid = min(n, 6 - ptr)
        ref[ptr:ptr + valid] = keys[:valid]
        ptr = (ptr + valid) % 6
        assert torch.equal(queue.queue, ref) and int(queue.ptr) == ptr
    with pytest.raises(ValueError, match='overflow'):
        FeatureQueue(length=6, dim=2, overflow='keep')
