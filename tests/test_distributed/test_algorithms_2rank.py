"""One training step of every algorithm on 2 CPU ranks (batch b each) vs one
process (batch 2b), toy r18 models on tiny fake batches.

What must agree:

- the gathered state after the step (image/region queues and their
  pointers, PLRC's distillation centre) equals the 1-process 2b run, on both
  ranks;
- every loss term of rank r equals a 1-process run on rank r's b samples
  (the terms are computed per rank, with the shared queue/centre);
- the mean over the ranks of the batch-decomposable terms (InfoNCE against
  the queue, CCOP's region term, Deformable DETR's localisation losses with
  equal box counts) equals the 2b run.

To make the runs comparable, BN and dropout are in eval mode (per-sample
functions: per-rank BN statistics are DDP's normal behaviour, not under
test), CCOP draws no jitter (``n_jitter=0``: the un-jittered key) and PLRC
draws its points per sample from a generator seeded by the sample's boxes.
PLRC's point contrast takes its negatives from the rank's own batch, as the
official code (per-GPU batch), so it is compared per rank only.
"""
import copy
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from distributed_helpers import run_on_ranks

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(ROOT, 'configs', 'mmregion')
B = 2  # images per rank
STATE_KEYS = ('queue', 'ptr', 'center')
DECOMPOSABLE = dict(
    mocov2=('loss', ),
    ccop=('loss_img', 'loss_region'),
    plrc=('loss_img', ),
    proseco=('loss_cls', 'loss_bbox', 'loss_iou'))


def _eval_bn_dropout(model):
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()
    return model


def _per_sample_points(sampler):
    """Make ``sampler.sample`` draw sample i's points from its own seed."""
    sample = sampler.sample

    def per_sample(boxes, valid, view_affine, generator=None):
        pts, vals = [], []
        for i in range(boxes.shape[0]):
            seed = int(boxes[i].abs().sum() * 100) % 2**31
            p, v = sample(boxes[i:i + 1], valid[i:i + 1], view_affine[i:i + 1],
                          torch.Generator().manual_seed(seed))
            pts.append(p)
            vals.append(v)
        return torch.cat(pts), torch.cat(vals)

    sampler.sample = per_sample


def _build(name):
    """(model, loss closure inputs of 2B images) of one algorithm."""
    import benchmark_ccop
    import benchmark_plrc
    import benchmark_proseco
    from mmengine.config import Config

    from mmregion.registry import MODELS
    from mmregion.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    n = 2 * B
    if name in ('mocov2', 'ccop'):
        cfg = Config.fromfile(osp.join(CFG, f'{name}_r18_toy.py')).model
        if name == 'ccop':
            cfg.box_jitter.n_jitter = 0
        model = MODELS.build(cfg)
        inputs, samples = benchmark_ccop.make_batch(
            SimpleNamespace(batch=n, size=96, regions=3), 'cpu')
        batch = dict(inputs=inputs, data_samples=samples)
    elif name == 'plrc':
        cfg = Config.fromfile(osp.join(CFG, 'plrc_r18_toy.py')).model
        cfg.head.num_distill_points = None
        # every common region (no random pick of one cell per image: the
        # pick draws from the global RNG, whose stream differs between a
        # rank and the 1-process reference)
        cfg.regions_per_image = None
        model = MODELS.build(cfg)
        _per_sample_points(model.point_sampler)
        batch = model.data_preprocessor(
            benchmark_plrc.fake_batch(n, 96, 4, views=cfg.num_views), True)
    else:
        cfg = Config.fromfile(
            osp.join(CFG, 'proseco_deformable-detr_r18_toy.py')).model
        model = MODELS.build(cfg)
        model.init_weights()
        inputs, samples = benchmark_proseco.fake_batch(n, 64, 4, 'cpu')
        batch = dict(inputs=inputs, data_samples=samples)
    return _eval_bn_dropout(model.train()), batch


def _half(batch, rank):
    sl = slice(rank * B, (rank + 1) * B)
    return dict(
        inputs=[x[sl] for x in batch['inputs']],
        data_samples=batch['data_samples'][sl])


def _step(model, batch):
    """One forward (the queues/centre update in it); losses and state."""
    losses = model.loss(batch['inputs'], batch['data_samples'])
    losses = {
        k: float(sum(v) if isinstance(v, list) else v)
        for k, v in losses.items() if 'loss' in k
    }
    state = {
        k: v.clone()
        for k, v in model.named_buffers()
        if k.split('.')[-1].startswith(STATE_KEYS) and 'momentum' not in k
    }
    return dict(losses=losses, state=state)


def _ranks_worker(rank, world_size, cases):
    return {
        name: _step(model, _half(batch, rank))
        for name, (model, batch) in cases.items()
    }


@pytest.fixture(scope='module')
def runs():
    import sys
    sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
    cases = {
        name: _build(name)
        for name in ('mocov2', 'ccop', 'plrc', 'proseco')
    }
    # the ranks fork with the pristine models; the references use copies
    ranks = run_on_ranks(_ranks_worker, cases)
    full = {n: _step(copy.deepcopy(m), b) for n, (m, b) in cases.items()}
    halves = [{
        n: _step(copy.deepcopy(m), _half(b, r))
        for n, (m, b) in cases.items()
    } for r in range(2)]
    return dict(ranks=ranks, full=full, halves=halves)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mocov2', 'ccop', 'plrc', 'proseco'])
def test_two_ranks_match_one_process(runs, name):
    ranks = [r[name] for r in runs['ranks']]
    full, halves = runs['full'][name], [h[name] for h in runs['halves']]
    # gathered state: identical on both ranks and equal to the 2b run
    assert set(full['state']) == set(ranks[0]['state'])
    if name in ('mocov2', 'ccop', 'plrc'):
        assert full['state'], 'no queue/centre buffer found'
    for key, ref in full['state'].items():
        for r in range(2):
            torch.testing.assert_close(
                ranks[r]['state'][key],
                ref,
                rtol=1e-4,
                atol=1e-5,
                msg=lambda m: f'{name} rank {r} {key}: {m}')
    # every term of rank r = a 1-process run on rank r's samples
    for r in range(2):
        assert set(ranks[r]['losses']) == set(halves[r]['losses'])
        for k, v in halves[r]['losses'].items():
            assert ranks[r]['losses'][k] == pytest.approx(
                v, rel=1e-4, abs=1e-5), f'{name} rank {r} {k}'
    # decomposable terms: the mean over ranks = the 2b run
    for k in DECOMPOSABLE[name]:
        mean = sum(r['losses'][k] for r in ranks) / 2
        assert mean == pytest.approx(
            full['losses'][k], rel=1e-4, abs=1e-5), f'{name} {k}'
