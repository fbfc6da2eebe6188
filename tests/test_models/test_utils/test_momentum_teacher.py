import copy

import pytest
import torch
import torch.nn as nn

from mmregion.models.utils import MomentumTeacher


class _Online(nn.Module):

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        self.neck = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 2))
        self.other = nn.Linear(2, 2)


@pytest.mark.parametrize('momentum', [0., 1., -0.1, 1.5])
def test_momentum_is_validated(momentum):
    model = _Online()
    with pytest.raises(ValueError, match=r'momentum must be in \(0, 1\)'):
        MomentumTeacher(dict(backbone=model.backbone), momentum=momentum)
    teacher = MomentumTeacher(dict(backbone=model.backbone), momentum=0.1)
    if momentum == 0.:  # a frozen teacher: the end of a cosine schedule
        teacher.momentum = momentum  # (CosineTeacherMomentumHook)
        assert teacher.momentum == 0.
    else:
        with pytest.raises(ValueError, match=r'momentum must be in \[0, 1\)'):
            teacher.momentum = momentum  # e.g. set by a momentum hook
    teacher.momentum = 0.2
    assert teacher.momentum == 0.2


def test_copies_are_frozen_and_keyed_like_mmengine_ema():
    model = _Online()
    model.teacher = MomentumTeacher(
        dict(backbone=model.backbone, neck=model.neck), momentum=0.1)
    assert model.teacher.names == ('backbone', 'neck')
    assert model.teacher['neck'] is model.teacher.module['neck']
    assert all(not p.requires_grad for p in model.teacher.parameters())
    keys = [k for k in model.state_dict() if k.startswith('teacher.')]
    assert 'teacher.steps' in keys
    assert 'teacher.module.backbone.0.weight' in keys
    assert 'teacher.module.backbone.1.running_mean' in keys
    assert not any('other' in k for k in keys)
    # the online modules are independent copies: no shared storage
    assert model.teacher['backbone'][0].weight.data_ptr() != \
        model.backbone[0].weight.data_ptr()


def test_ema_matches_a_loop_reference():
    model = _Online()
    teacher = MomentumTeacher(
        dict(backbone=model.backbone, neck=model.neck), momentum=0.25)
    names = ('backbone', 'neck')

    def online_state():
        return {
            f'{n}.{k}': v.detach().clone()
            for n in names
            for k, v in getattr(model, n).state_dict().items()
        }

    def teacher_state():
        return {
            f'{n}.{k}': v.detach().clone()
            for n in names
            for k, v in teacher[n].state_dict().items()
        }

    params = {
        f'{n}.{k}'
        for n in names
        for k, _ in getattr(model, n).named_parameters()
    }
    ref = None
    for step in range(4):
        with torch.no_grad():  # the online model moves (an optimiser step)
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model.backbone[1].running_mean.add_(1.0)
        src = online_state()
        teacher.update(model)
        if ref is None:  # the first update copies everything
            ref = dict(src)
        else:  # later ones: EMA of the parameters, buffers copied
            for k, v in src.items():
                ref[k] = (1 - 0.25) * ref[k] + 0.25 * v if k in params \
                    else v.clone()
        got = teacher_state()
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], msg=k)
        assert int(teacher.steps) == step + 1


def test_updates_need_no_grad_and_leave_online_grads():
    model = _Online()
    teacher = MomentumTeacher(dict(neck=model.neck), momentum=0.5)
    model.neck(torch.randn(2, 4)).sum().backward()
    grads = [p.grad.clone() for p in model.neck.parameters()]
    teacher.update(model)
    teacher.update(model)
    assert all(p.grad is None for p in teacher.parameters())
    for p, g in zip(model.neck.parameters(), grads):
        assert torch.equal(p.grad, g)


@pytest.mark.parametrize('eval_mode', [False, True])
def test_train_mode_follows_parent_unless_pinned(eval_mode):
    model = _Online()
    model.teacher = MomentumTeacher(
        dict(neck=model.neck), momentum=0.1, eval_mode=eval_mode)
    model.train()
    assert model.neck.training
    assert model.teacher.training is (not eval_mode)
    assert model.teacher['neck'][0].training is (not eval_mode)
    model.eval()
    assert not model.teacher.training
    # deep copies (e.g. the skip/restore snapshot) keep the behaviour
    clone = copy.deepcopy(model).train()
    assert clone.teacher.training is (not eval_mode)
