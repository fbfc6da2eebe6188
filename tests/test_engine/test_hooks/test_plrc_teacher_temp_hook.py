from types import SimpleNamespace

import pytest
import torch.nn as nn

from mmregion.engine.hooks import PLRCTeacherTempHook
from mmregion.models.losses import PointAffinityDistillationLoss


def test_teacher_temp_hook_sets_progress():
    model = nn.Module()
    model.loss_distill = PointAffinityDistillationLoss(
        out_dim=4,
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_epochs=2)
    runner = SimpleNamespace(model=model, iter=5, train_dataloader=[0] * 5)
    hook = PLRCTeacherTempHook()
    hook.before_train_iter(runner, 0)
    assert model.loss_distill.progress == pytest.approx(1.0)
    assert model.loss_distill.teacher_temp == pytest.approx(0.055)
    runner.iter = 50
    hook.before_train_iter(runner, 0)
    assert model.loss_distill.teacher_temp == pytest.approx(0.07)
    with pytest.raises(AttributeError, match='loss_distill'):
        PLRCTeacherTempHook().before_train_iter(
            SimpleNamespace(model=nn.Module(), iter=0, train_dataloader=[0]),
            0)
