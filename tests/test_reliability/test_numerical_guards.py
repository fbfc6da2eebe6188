"""FiniteCheckOptimWrapper and NonFiniteLossGuardMixin."""
import contextlib
import copy
import glob
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from mmregion.engine.optim_wrappers import (FiniteCheckAmpOptimWrapper,
                                            FiniteCheckOptimWrapper)
from mmregion.models.utils import NonFiniteLossGuardMixin
from mmregion.models.utils.loss_guard import (NONFINITE_LOSS_INFO_KEY,
                                              get_nonfinite_loss_info)
from mmregion.registry import OPTIM_WRAPPERS
from mmregion.utils import load_checkpoint_safely

NAN = float('nan')


class _Guarded(NonFiniteLossGuardMixin, BaseModel):

    def forward(self, *args, **kwargs):
        return None


@pytest.fixture
def hub():
    hub = MessageHub.get_instance('test_reliability_guards')
    hub.pop_info(NONFINITE_LOSS_INFO_KEY)
    hub.pop_info('iter')
    yield hub
    hub.pop_info(NONFINITE_LOSS_INFO_KEY)
    hub.pop_info('iter')


def test_mixin_records_nonfinite_terms(hub):
    model = _Guarded()
    hub.update_info('iter', 16)
    losses = dict(
        loss_a=torch.tensor([1.0, 3.0]),
        loss_obj=torch.tensor(NAN),
        loss_list=[torch.tensor(1.),
                   torch.tensor(float('inf'))],
        acc=torch.tensor(NAN))  # not a loss: not checked
    loss, log_vars = model.parse_losses(losses)
    assert math.isnan(loss.item())
    assert set(log_vars) == {'loss', 'loss_a', 'loss_obj', 'loss_list', 'acc'}
    info = get_nonfinite_loss_info(16)
    assert info['iter'] == 16
    assert list(info['nonfinite']) == ['loss_obj', 'loss_list']
    assert math.isnan(info['nonfinite']['loss_obj'])
    assert info['nonfinite']['loss_list'] == float('inf')
    assert info['losses']['loss_a'] == 2.0
    assert get_nonfinite_loss_info(17) is None  # stale for another iter
    # a finite step clears the record
    model.parse_losses(dict(loss_a=torch.tensor(1.), loss_b=torch.tensor(2.)))
    assert hub.get_info(NONFINITE_LOSS_INFO_KEY) is None


def _wrapper(cls=FiniteCheckOptimWrapper, lr=0.5, **kwargs):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, cls(optimizer=opt, **kwargs)


def _loss(model, x, bad=False):
    loss = model(x).pow(2).mean()
    return loss * NAN if bad else loss


def test_raise_names_loss_and_iteration(hub):
    model, wrapper = _wrapper(on_nonfinite='raise')
    before = copy.deepcopy(model.state_dict())
    hub.update_info('iter', 16)
    _Guarded().parse_losses(
        dict(loss_obj=torch.tensor(NAN), loss_cls=torch.tensor(0.5)))
    with pytest.raises(FloatingPointError) as e:
        wrapper.update_params(_loss(model, torch.ones(2, 3), bad=True))
    msg = str(e.value)
    assert 'loss_obj=nan at iteration 17 (runner.iter=16)' in msg
    assert 'loss_cls=0.5' in msg
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


def test_raise_without_mixin_names_total(hub):
    model, wrapper = _wrapper()
    hub.update_info('iter', 3)
    with pytest.raises(FloatingPointError, match=r'loss=nan at iteration 4'):
        wrapper.update_params(_loss(model, torch.ones(2, 3), bad=True))


def test_skip_and_max_skips(hub):
    model, wrapper = _wrapper(on_nonfinite='skip', max_skips=2)
    x = torch.ones(2, 3)
    wrapper.update_params(_loss(model, x))
    snap = copy.deepcopy(model.state_dict())
    mom = copy.deepcopy(wrapper.optimizer.state_dict()['state'])
    for _ in range(2):
        wrapper.update_params(_loss(model, x, bad=True))
    assert wrapper.num_skipped == 2 and wrapper.num_consecutive_skips == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, snap[k])
    state = wrapper.optimizer.state_dict()['state']
    for k in mom:
        assert torch.equal(state[k]['momentum_buffer'],
                           mom[k]['momentum_buffer'])
    wrapper.update_params(_loss(model, x))  # a good step resets the streak
    assert wrapper.num_consecutive_skips == 0
    assert not torch.equal(model.weight, snap['weight'])
    for _ in range(2):
        wrapper.update_params(_loss(model, x, bad=True))
    with pytest.raises(FloatingPointError, match='3 consecutive'):
        wrapper.update_params(_loss(model, x, bad=True))
    assert wrapper.inner_count == 6  # skipped steps are counted too


def test_skip_discards_accumulation_window():
    """acc=2: a NaN in window 2 drops that window; windows 1, 3 as usual."""
    xs = [torch.full((2, 3), float(i + 1)) / 10 for i in range(6)]
    model, wrapper = _wrapper(
        on_nonfinite='skip', accumulative_counts=2, lr=0.1)
    wrapper.initialize_count_status(model, 0, 6)
    ref_model, ref = _wrapper(OptimWrapper, accumulative_counts=2, lr=0.1)
    ref.initialize_count_status(ref_model, 0, 6)
    after = []
    for i, x in enumerate(xs):
        wrapper.update_params(_loss(model, x, bad=(i == 2)))
        after.append(model.weight.detach().clone())
    assert torch.equal(after[3], after[1])  # window 2 left no trace
    assert not torch.equal(after[5], after[3])  # window 3 stepped
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    for i in (0, 1, 4, 5):  # reference: windows 1 and 3 only
        ref.update_params(_loss(ref_model, xs[i]))
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q)


def test_amp_variant_skips(monkeypatch):
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    cuda = torch.cuda.is_available()
    if not cuda:
        # CPU: GradScaler disables itself; the wrapper logic is the same
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                            lambda: True)
    with contextlib.nullcontext() if cuda else pytest.warns(UserWarning):
        model, wrapper = _wrapper(
            FiniteCheckAmpOptimWrapper, on_nonfinite='skip')
    device = 'cuda' if cuda else 'cpu'
    model.to(device)
    x = torch.ones(2, 3, device=device)
    w0 = model.weight.detach().clone()
    with wrapper.optim_context(model):
        loss = _loss(model, x, bad=True)
    wrapper.update_params(loss)
    assert torch.equal(model.weight, w0) and wrapper.num_skipped == 1
    with wrapper.optim_context(model):
        loss = _loss(model, x)
    wrapper.update_params(loss)
    assert not torch.equal(model.weight, w0)


def test_registry_and_arguments():
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    w = OPTIM_WRAPPERS.build(
        dict(type='mmregion.FiniteCheckOptimWrapper', optimizer=opt))
    assert isinstance(w, FiniteCheckOptimWrapper) and w.on_nonfinite == 'raise'
    with pytest.raises(ValueError, match='on_nonfinite'):
        FiniteCheckOptimWrapper(optimizer=opt, on_nonfinite='ignore')
    with pytest.raises(ValueError, match='max_skips'):
        FiniteCheckOptimWrapper(optimizer=opt, max_skips=-1)


def _assert_weights_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_runner_raise_stops_with_intact_checkpoint(tmp_path, toy):
    k = 3
    runner, record = toy.build_runner(
        tmp_path, toy.ToyModel(nan_at={k}), max_iters=6, on_nonfinite='raise')
    with pytest.raises(FloatingPointError) as e:
        runner.train()
    msg = str(e.value)
    assert f'loss_x=nan at iteration {k + 1} (runner.iter={k})' in msg
    assert 'loss_y=' in msg
    # weights are those after iteration k-1, and so is the last checkpoint
    weights = {k_: v.detach() for k_, v in runner.model.state_dict().items()}
    _assert_weights_equal(weights, record.after[k - 1])
    assert all(torch.isfinite(v).all() for v in weights.values())
    last = osp.join(tmp_path, f'iter_{k}.pth')
    assert not osp.exists(osp.join(tmp_path, f'iter_{k + 1}.pth'))
    with open(osp.join(tmp_path, 'last_checkpoint')) as f:
        assert f.read().strip() == last
    ckpt = load_checkpoint_safely(last)
    _assert_weights_equal(ckpt['state_dict'], record.after[k - 1])
    assert ckpt['meta']['iter'] == k


def test_runner_skip_keeps_weights_and_continues(tmp_path, toy):
    k = 3
    runner, record = toy.build_runner(
        tmp_path,
        toy.ToyModel(nan_at={k}),
        max_iters=6,
        on_nonfinite='skip',
        max_skips=2)
    runner.train()
    _assert_weights_equal(record.after[k], record.before[k])
    # the optimizer state (momentum) was not touched either
    state = runner.optim_wrapper.optimizer.state_dict()['state']
    assert state and record.momentum_before[k + 1].keys() == \
        record.momentum_before[k].keys()
    for i in record.momentum_before[k]:
        assert torch.equal(record.momentum_before[k + 1][i],
                           record.momentum_before[k][i])
    # training went on and learned
    assert runner.iter == 6 and osp.exists(osp.join(tmp_path, 'iter_6.pth'))
    assert not torch.equal(record.after[5]['linear.weight'],
                           record.after[k]['linear.weight'])
    assert runner.optim_wrapper.num_skipped == 1
    log = ''.join(
        open(p).read()
        for p in glob.glob(osp.join(tmp_path, '**', '*.log'), recursive=True))
    assert f'loss_x=nan at iteration {k + 1} (runner.iter={k})' in log
    assert 'step skipped' in log
