"""on_nonfinite='skip': a skipped step changes no state at all.

The forward pass of CCOP / PLRC / ProSeCo updates BN statistics, feature
queues and the momentum encoder / EMA teacher before the loss is known.
FiniteCheckOptimWrapper snapshots buffers and frozen parameters in
``optim_context`` and restores them when it skips the step.
"""
import copy
import math
import os.path as osp
import sys

import pytest
import torch

import mmregion  # noqa: F401
from mmregion.engine.optim_wrappers import FiniteCheckOptimWrapper
from mmregion.engine.optim_wrappers.finite_check_optim_wrapper import (
    forward_state_nbytes, restore_forward_state, snapshot_forward_state)
from mmregion.registry import MODELS
from mmregion.utils import register_all_modules

ALGO_TESTS = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_models',
    'test_algorithms')


def _algo_test(name):
    if ALGO_TESTS not in sys.path:
        sys.path.insert(0, ALGO_TESTS)
    return __import__(name)


def _poison(module):
    """Make ``module``'s output NaN (a blow-up inside the forward pass)."""
    return module.register_forward_hook(lambda m, i, o: o * math.nan)


def _state(model, wrapper):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = copy.deepcopy(wrapper.optimizer.state_dict()['state'])
    return state, opt


def _assert_same(before, after):
    (s0, o0), (s1, o1) = before, after
    assert s0.keys() == s1.keys()
    changed = [k for k in s0 if not torch.equal(s0[k], s1[k])]
    assert not changed, f'state changed by a skipped step: {changed[:8]}'
    assert o0.keys() == o1.keys()
    for k in o0:
        for name, v in o0[k].items():
            assert torch.equal(v, o1[k][name]), (k, name)


def _check_skip_changes_nothing(model, data, poisoned, restore=True):
    """One finite step (queues, EMA in use), then one poisoned step.

    Returns:
        list[str]: State keys the skipped step changed.
    """
    model.train()
    wrapper = FiniteCheckOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        on_nonfinite='skip',
        restore_state_on_skip=restore)
    log_vars = model.train_step(data, wrapper)
    assert torch.isfinite(log_vars['loss']) and wrapper.num_skipped == 0
    before = _state(model, wrapper)
    handle = _poison(poisoned)
    try:
        log_vars = model.train_step(data, wrapper)
    finally:
        handle.remove()
    assert not torch.isfinite(log_vars['loss'])
    assert wrapper.num_skipped == 1
    after = _state(model, wrapper)
    return [
        k for k in before[0] if not torch.equal(before[0][k], after[0][k])
    ], before, after


def _ccop():
    t = _algo_test('test_ccop')
    torch.manual_seed(0)
    model = MODELS.build(t._cfg())
    model.init_weights()
    data = dict(inputs=t._inputs(3), data_samples=t._samples([3, 1, 2]))
    return model, data, model.backbone.layer2


def _plrc():
    from plrc_views import grid_views
    t = _algo_test('test_plrc')
    torch.manual_seed(0)
    model = MODELS.build(t._cfg())
    inputs, samples = grid_views(B=2)
    data = dict(
        inputs=[(x * 50 + 120).clamp(0, 255).to(torch.uint8) for x in inputs],
        data_samples=samples)
    return model, data, model.backbone.layer2


def _proseco():
    t = _algo_test('test_proseco')
    model = t._build()
    inputs, samples = t._batch((3, 2))
    # NaN after the Hungarian matching (its guard raises on NaN costs)
    return model, dict(inputs=inputs, data_samples=samples), \
        model.head.loss_module


@pytest.mark.parametrize(
    'build', [_ccop, _plrc, _proseco], ids=['ccop', 'plrc', 'proseco'])
def test_skipped_step_changes_no_state(build):
    register_all_modules()
    model, data, poisoned = build()
    changed, before, after = _check_skip_changes_nothing(model, data, poisoned)
    _assert_same(before, after)
    assert not changed


def test_without_restore_the_forward_changes_state():
    """What the restore undoes (mmengine's behaviour, restore off): the
    queues, BN statistics and the momentum encoder moved."""
    register_all_modules()
    model, data, poisoned = _ccop()
    changed, _, _ = _check_skip_changes_nothing(
        model, data, poisoned, restore=False)
    assert any('queue' in k for k in changed), changed
    assert any('running_var' in k for k in changed), changed
    assert any(
        k.startswith('momentum_encoder.module.') and 'weight' in k
        for k in changed), changed


def test_snapshot_restores_replaced_and_frozen_tensors():
    bn = torch.nn.BatchNorm1d(3)
    frozen = torch.nn.Linear(3, 3)
    frozen.requires_grad_(False)
    model = torch.nn.Sequential(bn, frozen)
    ref = copy.deepcopy(model.state_dict())
    snap = snapshot_forward_state(model)
    model(torch.randn(4, 3))  # BN statistics move
    with torch.no_grad():
        frozen.weight.add_(1.0)  # an EMA update
    bn.running_mean = torch.zeros(5)  # a buffer replaced by another shape
    restore_forward_state(snap)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    # 3 + 3 + 1 (BN) + 9 + 3 (frozen Linear) values
    assert forward_state_nbytes(model) == (3 + 3 + 9 + 3) * 4 + 8
