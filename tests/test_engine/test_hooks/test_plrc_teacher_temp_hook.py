from types import SimpleNamespace

import pytest
import torch.nn as nn

from mmregion.engine.hooks import PLRCTeacherTempHook
from mmregion.models.losses import PointAffinityDistillationLoss


def test_teacher_temp_hook_sets_progress():
    model = nn.Module()
    model.head = nn.Module()
    model.head.loss_distill_module = PointAffinityDistillationLoss(
        out_dim=4,
        warmup_teacher_temperature=0.04,
        teacher_temperature=0.07,
        warmup_epochs=2)
    loss = model.head.loss_distill_module
    runner = SimpleNamespace(model=model, iter=5, train_dataloader=[0] * 5)
    hook = PLRCTeacherTempHook()
    hook.before_train_iter(runner, 0)
    assert loss.progress == pytest.approx(1.0)
    assert loss.teacher_temperature == pytest.approx(0.055)
    runner.iter = 50
    hook.before_train_iter(runner, 0)
    assert loss.teacher_temperature == pytest.approx(0.07)
    with pytest.raises(AttributeError, match='head.loss_distill_module'):
        PLRCTeacherTempHook().before_train_iter(
            SimpleNamespace(model=nn.Module(), iter=0, train_dataloader=[0]),
            0)
