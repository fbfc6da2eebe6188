"""CosineTeacherMomentumHook: SCE's cosine momentum schedule (issue 24)."""
import math
from types import SimpleNamespace

import pytest
import torch.nn as nn

from mmregion.engine.hooks import CosineTeacherMomentumHook
from mmregion.models.utils.momentum_teacher import MomentumTeacher
from mmregion.registry import HOOKS


def _sce_momentum(initial: float, step: int, max_steps: int) -> float:
    """SCE's rule (CEA-LIST/SCE momentum_base.py, 'cosine'), in SCE's
    convention (teacher = m * teacher + (1 - m) * online): the value used
    by the update at the end of batch ``step``."""
    return 1 - (1 - initial) * (math.cos(math.pi * step /
                                         (max_steps - 1)) + 1) / 2


def _runner(max_iters=11):
    model = nn.Module()
    model.online = nn.Linear(2, 2)
    model.teacher = MomentumTeacher(dict(online=model.online), momentum=0.01)
    return SimpleNamespace(model=model, iter=0, max_iters=max_iters)


def test_schedule_is_sce_cosine_shifted_to_the_update_before_the_pass():
    runner = _runner(max_iters=11)
    hook = HOOKS.build(dict(type='CosineTeacherMomentumHook'))
    assert isinstance(hook, CosineTeacherMomentumHook)
    hook.before_train(runner)
    seen = []
    for k in range(11):
        runner.iter = k
        hook.before_train_iter(runner, k)
        seen.append(runner.model.teacher.momentum)
    # our EMA step of iteration k is SCE's update at the end of batch k - 1
    for k in range(1, 11):
        assert seen[k] == pytest.approx(1 - _sce_momentum(0.99, k - 1, 11))
    assert seen[0] == pytest.approx(0.01)  # (the first call copies anyway)
    assert seen[1] == pytest.approx(0.01) and seen[-1] < seen[5] < 0.01
    # SCE's end: momentum 1 (ours 0) for the update after the last batch
    runner.iter = 12
    hook.before_train_iter(runner, 12)
    assert runner.model.teacher.momentum == pytest.approx(0., abs=1e-12)


def test_resume_starts_from_the_configured_momentum():
    hook = CosineTeacherMomentumHook(end_momentum=0.001)
    runner = _runner(max_iters=101)
    runner.iter = 51  # resumed: the teacher has its configured momentum
    hook.before_train_iter(runner, 0)
    assert runner.model.teacher.momentum == pytest.approx(0.001 +
                                                          (0.01 - 0.001) * 0.5)


def test_errors():
    with pytest.raises(ValueError, match='end_momentum'):
        CosineTeacherMomentumHook(end_momentum=1.)
    with pytest.raises(TypeError, match='no MomentumTeacher'):
        CosineTeacherMomentumHook().before_train(
            SimpleNamespace(model=nn.Linear(2, 2), iter=0, max_iters=3))
    with pytest.raises(ValueError, match='momentum must be'):
        _runner().model.teacher.momentum = 1.
