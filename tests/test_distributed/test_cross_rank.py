"""Cross-rank state on 2 CPU ranks (gloo): queues, shuffle-BN, the PLRC
centre and the data shards/seeds. All checks share one 2-process run."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from distributed_helpers import run_on_ranks

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _TinyBackbone(nn.Module):
    """conv + BN returning a 1-tuple (a backbone's output format)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return (self.bn(self.conv(x)), )


def _momentum_model():
    from mmregion.models.algorithms.base_momentum import \
        BaseMomentumSelfSupervisor

    class _Tiny(BaseMomentumSelfSupervisor):

        def loss(self, inputs, data_samples):
            return {}

    torch.manual_seed(0)
    model = _Tiny(backbone=_TinyBackbone(), shuffle_bn=True)
    model.init_momentum_encoder(('backbone', ))
    model.update_momentum_encoder()
    return model


def _queue_check(rank):
    from mmregion.models.utils import FeatureQueue
    torch.manual_seed(0)  # same initial noise on every rank
    queue = FeatureQueue(length=6, dim=2)
    # variable numbers of keys per rank and call; the 2nd call wraps
    for step, n in enumerate((1 + rank, 2 + rank)):
        queue.enqueue(torch.full((n, 2), 10. * step + rank))
    return dict(queue=queue.queue.clone(), ptr=int(queue.ptr))


def _shuffle_check(rank, world_size):
    from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
    b = 4
    x = torch.arange(b, dtype=torch.float32) + b * rank  # global ids
    moved, exact = False, True
    for _ in range(5):
        shuffled, idx = batch_shuffle_ddp(x[:, None])
        moved |= bool((shuffled[:, 0] // b != rank).any())
        exact &= torch.equal(batch_unshuffle_ddp(shuffled, idx)[:, 0], x)
    gathered = [torch.zeros_like(shuffled) for _ in range(world_size)]
    torch.distributed.all_gather(gathered, shuffled)
    perm = torch.cat(gathered)[:, 0].sort().values
    # the teacher with shuffle-BN gives the same per-sample outputs as
    # without (BN in eval mode: a per-sample function), in the input order
    model = _momentum_model()
    model.momentum_encoder.eval()
    torch.manual_seed(rank)
    imgs = torch.randn(b, 3, 8, 8)
    with_shuffle = model.forward_momentum(imgs)[0][0]
    model.shuffle_bn = False
    without = model.forward_momentum(imgs)[0][0]
    return dict(
        moved=moved,
        exact=exact,
        perm=perm,
        teacher_err=float((with_shuffle - without).abs().max()))


def _centre_check(rank):
    from mmregion.models.losses import PointAffinityDistillationLoss
    loss = PointAffinityDistillationLoss(out_dim=3, center_momentum=0.5)
    loss.train()
    teacher, weight = _centre_inputs(rank)
    loss(torch.zeros_like(teacher), teacher, weight)
    return dict(center=loss.center.clone())


def _centre_inputs(rank):
    g = torch.Generator().manual_seed(rank)
    n = 3 + 2 * rank  # different row counts per rank
    teacher = torch.randn(n, 3, generator=g)
    weight = (torch.arange(n) % 3 != 1).float()  # some rows masked out
    return teacher, weight


def _data_check(rank, world_size, data_root):
    from mmengine.config import Config
    from mmengine.dataset import DefaultSampler
    from mmengine.runner import set_random_seed

    from mmregion.datasets import RegionDataset
    ds = RegionDataset(
        ann_file='annotations/instances_train.json',
        data_root=data_root,
        data_prefix=dict(img='train/'),
        pipeline=[])
    sampler = DefaultSampler(ds, shuffle=True, seed=0)
    shards = []
    for epoch in range(2):
        sampler.set_epoch(epoch)  # what DistSamplerSeedHook does
        shards.append(list(sampler))
    runtime = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'default_runtime.py'))
    draws = []
    for _ in range(2):  # reproducible: the same seed gives the same draws
        seed = set_random_seed(
            0, diff_rank_seed=runtime.randomness.diff_rank_seed)
        draws.append((seed, float(torch.rand(1)), float(np.random.rand())))
    return dict(shards=shards, draws=draws, num=len(ds))


def _cross_rank_worker(rank, world_size, data_root):
    return dict(
        queue=_queue_check(rank),
        shuffle=_shuffle_check(rank, world_size),
        centre=_centre_check(rank),
        data=_data_check(rank, world_size, data_root))


@pytest.fixture(scope='module')
def results(toy_coco):
    return run_on_ranks(_cross_rank_worker, str(toy_coco))


@pytest.mark.slow
def test_queue_gathers_every_rank_in_rank_order(results):
    q0, q1 = (r['queue'] for r in results)
    assert torch.equal(q0['queue'], q1['queue'])
    # call 1: rank 0's key (0), rank 1's 2 keys (1) -> slots 0-2; call 2:
    # rank 0's 2 keys (10), rank 1's 3 keys (11) -> slots 3-5, then 0-1
    assert q0['queue'][:, 0].tolist() == [11., 11., 1., 10., 10., 11.]
    assert q0['ptr'] == q1['ptr'] == 2


@pytest.mark.slow
def test_shuffle_bn_permutes_across_ranks_and_unpermutes(results):
    for rank, r in enumerate(results):
        s = r['shuffle']
        assert s['exact'], f'rank {rank}: unshuffle is not the inverse'
        assert torch.equal(s['perm'], torch.arange(8.))  # a permutation
        assert s['teacher_err'] == 0.
    assert any(r['shuffle']['moved'] for r in results), \
        'no sample ever left its rank'


@pytest.mark.slow
def test_plrc_centre_is_all_reduced(results):
    c0, c1 = (r['centre']['center'] for r in results)
    assert torch.equal(c0, c1)
    rows = [_centre_inputs(r) for r in range(2)]
    t = torch.cat([t for t, _ in rows])
    w = torch.cat([w for _, w in rows])
    expected = 0.5 * (t * w[:, None]).sum(0) / w.sum()
    torch.testing.assert_close(c0[0], expected)


@pytest.mark.slow
def test_data_shards_epochs_and_seeds(results):
    d0, d1 = (r['data'] for r in results)
    for epoch in range(2):
        s0, s1 = d0['shards'][epoch], d1['shards'][epoch]
        assert not set(s0) & set(s1), 'ranks share samples'
        assert sorted(s0 + s1) == list(range(d0['num']))
    assert d0['shards'][0] != d0['shards'][1], 'epoch 1 not reshuffled'
    for d in (d0, d1):
        assert d['draws'][0] == d['draws'][1], 'seeding not reproducible'
    assert d0['draws'][0][0] != d1['draws'][0][0]
    assert d0['draws'][0][1:] != d1['draws'][0][1:], \
        'ranks draw the same random numbers'
