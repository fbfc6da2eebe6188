"""The one loss contract (``mmregion/models/losses/utils.py``), checked for
every loss registered from ``mmregion.models.losses``.

A new loss needs a case in ``CASES`` (its tiny inputs); the test fails until
it has one and until it keeps the contract: a functional form returning the
per-row loss, a module with ``reduction`` / ``loss_weight`` and
``forward(..., weight=None, avg_factor=None, reduction_override=None)``,
'none' / 'mean' / 'sum' consistent, weights, ``avg_factor``,
``reduction_override`` (a bad value raises a ValueError naming it),
``loss_weight`` scaling and finite gradients.
"""
import importlib
import inspect

import pytest
import torch
import torch.nn.functional as F

from mmregion.registry import MODELS
from mmregion.utils import register_all_modules

register_all_modules()


def _boxes(gen, *shape):
    xy = torch.rand(*shape, 2, generator=gen) * 40
    return torch.cat([xy, xy + torch.rand(*shape, 2, generator=gen) * 30 + 5],
                     -1)


def _sce(gen):
    valid = torch.ones(6, dtype=torch.bool)
    valid[4] = False
    return dict(
        student=torch.randn(6, 8, generator=gen),
        teacher=torch.randn(6, 8, generator=gen),
        valid=valid)


def _loc_sce(gen):
    boxes = _boxes(gen, 2, 3)
    boxes[0, 1] = boxes[0, 0] + 1.  # an overlapping positive
    valid = torch.ones(2, 3, dtype=torch.bool)
    valid[1, 2] = False
    return dict(
        student=torch.randn(2, 3, 8, generator=gen),
        teacher=torch.randn(2, 3, 8, generator=gen),
        boxes=boxes,
        valid=valid)


def _info_nce(gen):
    return dict(
        query=F.normalize(torch.randn(5, 8, generator=gen), dim=1),
        key=F.normalize(torch.randn(5, 8, generator=gen), dim=1),
        queue=F.normalize(torch.randn(7, 8, generator=gen), dim=1))


def _intra(gen):
    valid = torch.ones(2, 4, dtype=torch.bool)
    valid[1, 3] = False
    return dict(
        query=F.normalize(torch.randn(2, 4, 8, generator=gen), dim=-1),
        key=F.normalize(torch.randn(2, 4, 8, generator=gen), dim=-1),
        boxes=_boxes(gen, 2, 4) * 3,  # spread out: most pairs are negatives
        valid=valid)


def _point_infonce(gen):
    valid = torch.ones(12, dtype=torch.bool)
    valid[-1] = False
    return dict(
        features=torch.randn(12, 8, generator=gen),
        labels=torch.arange(12) // 3,
        valid=valid,
        view_ids=torch.arange(12) % 2)


def _distill(gen):
    return dict(
        student=torch.randn(6, 5, generator=gen),
        teacher=torch.randn(6, 5, generator=gen))


# registered name -> (constructor kwargs, inputs, name of the input that
# carries the gradient, functional form)
CASES = {
    'SCELoss': (dict(), _sce, 'student', 'sce_loss'),
    'LocSCELoss': (dict(), _loc_sce, 'student', 'loc_sce_loss'),
    'InfoNCELoss': (dict(), _info_nce, 'query', 'info_nce_loss'),
    'IntraImageDiscriminationLoss':
    (dict(), _intra, 'query', 'intra_image_discrimination_loss'),
    'PointInfoNCELoss':
    (dict(), _point_infonce, 'features', 'point_supcon_loss'),
    'PointAffinityDistillationLoss':
    (dict(out_dim=5), _distill, 'student', 'point_affinity_distillation_loss'),
}


def _registered_losses():
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if cls.__module__.startswith('mmregion.models.losses'))


def test_every_registered_loss_has_a_case():
    assert _registered_losses() == sorted(CASES), (
        'add the tiny inputs of a new loss to CASES')


def _build(name, **kwargs):
    cfg = dict(CASES[name][0], type=name, **kwargs)
    return MODELS.build(cfg).eval()  # eval: no state update between calls


def _inputs(name, seed=0):
    return CASES[name][1](torch.Generator().manual_seed(seed))


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', sorted(CASES))
def test_signatures(name):
    cls = MODELS.get(name)
    init = inspect.signature(cls.__init__).parameters
    assert init['reduction'].default == 'mean'
    assert init['loss_weight'].default == 1.0
    fwd = inspect.signature(cls.forward).parameters
    for arg in ('weight', 'avg_factor', 'reduction_override'):
        assert fwd[arg].default is None, f'{name}.forward: {arg}=None'
    func = getattr(importlib.import_module(cls.__module__), CASES[name][3])
    params = inspect.signature(func).parameters
    assert params['reduction'].default == 'none'
    assert params['weight'].default is None
    assert params['avg_factor'].default is None


@pytest.mark.parametrize('name', sorted(CASES))
def test_reductions_weight_and_avg_factor(name):
    inputs = _inputs(name)
    loss = _build(name)
    none = loss(**inputs, reduction_override='none')
    assert none.dim() >= 1 and torch.isfinite(none).all()
    assert none.abs().sum() > 0
    total = loss(**inputs, reduction_override='sum')
    assert total.dim() == 0
    _close(total, none.sum())
    mean = loss(**inputs)  # the module's default reduction is 'mean'
    assert mean.dim() == 0 and torch.isfinite(mean)
    _close(loss(**inputs, reduction_override='mean'), mean)
    _close(loss(**inputs, avg_factor=2.5), none.sum() / 2.5)
    # weight: multiplies the per-row loss, 'mean' is the weighted mean over
    # the rows that take part (those with a non-zero unweighted loss here)
    weight = torch.rand(
        none.shape, generator=torch.Generator().manual_seed(1)) + 0.5
    _close(
        loss(**inputs, weight=weight, reduction_override='none'),
        none * weight)
    _close(
        loss(**inputs, weight=weight, reduction_override='sum'),
        (none * weight).sum())
    _close(
        loss(**inputs, weight=weight, avg_factor=3.),
        (none * weight).sum() / 3.)
    zero = torch.zeros_like(weight)
    for red in ('mean', 'sum'):
        out = loss(**inputs, weight=zero, reduction_override=red)
        assert out.item() == 0, (name, red)
    with pytest.raises(ValueError):  # mmdet: no avg_factor with 'sum'
        loss(**inputs, avg_factor=2., reduction_override='sum')


@pytest.mark.parametrize('name', sorted(CASES))
def test_reduction_override_and_config(name):
    inputs = _inputs(name)
    for red in ('none', 'mean', 'sum'):
        _close(
            _build(name, reduction=red)(**inputs),
            _build(name)(**inputs, reduction_override=red))
    with pytest.raises(ValueError, match='bogus'):
        _build(name)(**inputs, reduction_override='bogus')
    with pytest.raises(ValueError, match='avg'):
        _build(name, reduction='avg')


@pytest.mark.parametrize('name', sorted(CASES))
def test_loss_weight_scales(name):
    inputs = _inputs(name)
    for red in ('none', 'mean', 'sum'):
        _close(
            _build(name, loss_weight=2.5, reduction=red)(**inputs),
            2.5 * _build(name, reduction=red)(**inputs))


@pytest.mark.parametrize('name', sorted(CASES))
def test_finite_gradients(name):
    inputs = _inputs(name)
    grad_input = CASES[name][2]
    inputs[grad_input].requires_grad_(True)
    loss = _build(name).train()(**inputs)
    loss.backward()
    grad = inputs[grad_input].grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
