"""Global-batch negatives (``gather_negatives=True``): 2 gloo ranks x batch b
give the loss and the gradients of 1 process x batch 2b."""
import os.path as osp

import pytest
import torch
import torch.multiprocessing as mp

NB, N, D = 4, 3, 8  # 2 ranks x 2 images x 3 proposals


def _data():
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(NB, N, D, generator=gen)
    teacher = torch.randn(NB, N, D, generator=gen)
    xy = torch.rand(NB, N, 2, generator=gen) * 20
    boxes = torch.cat([xy, xy + 10], -1)
    boxes[0, 1] = boxes[0, 0] + 1.0  # overlapping positives
    boxes[3, 2] = boxes[3, 0]
    valid = torch.ones(NB, N, dtype=torch.bool)
    valid[2, 1] = False
    return student, teacher, boxes, valid


def _losses(anchor, student, teacher, boxes, valid, gather):
    """Per-row LocSCE and SCE losses and the student gradient of their
    sum."""
    from mmregion.models.losses import LocSCELoss, SCELoss
    student = student.clone().requires_grad_(True)
    loc = LocSCELoss(
        anchor=anchor, gather_negatives=gather,
        reduction='none')(student, teacher, boxes, valid)
    sce = SCELoss(
        anchor=anchor, gather_negatives=gather,
        reduction='none')(student.reshape(-1, D), teacher.reshape(-1, D),
                          valid.reshape(-1))
    (loc.sum() + sce.sum()).backward()
    return loc.detach(), sce.detach(), student.grad


def _worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    try:
        sl = slice(rank * NB // world, (rank + 1) * NB // world)
        data = [t[sl] for t in _data()]
        out = {
            a: _losses(a, *data, gather=True)
            for a in ('teacher', 'student')
        }
        torch.save(out, osp.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_equal_one_process(tmp_path):
    world = 2
    # spawn, never fork: a child forked after the parent's OpenMP pool ran
    # (any earlier test in the session) deadlocks in its first parallel op
    method = 'spawn'
    mp.start_processes(
        _worker,
        args=(world, str(tmp_path / 'init'), str(tmp_path)),
        nprocs=world,
        join=True,
        start_method=method)
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in range(world)]
    for anchor in ('teacher', 'student'):
        loc, sce, grad = _losses(anchor, *_data(), gather=False)
        torch.testing.assert_close(
            torch.cat([r[anchor][0] for r in ranks]), loc)
        torch.testing.assert_close(
            torch.cat([r[anchor][1] for r in ranks]), sce)
        torch.testing.assert_close(
            torch.cat([r[anchor][2] for r in ranks]), grad)
    # without the gather, a rank sees only its own negatives: differs
    half = [t[:NB // 2] for t in _data()]
    local = _losses('teacher', *half, gather=False)[0]
    assert not torch.allclose(local, ranks[0]['teacher'][0])
