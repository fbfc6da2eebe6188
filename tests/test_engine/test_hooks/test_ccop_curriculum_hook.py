from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.logging import MessageHub

from mmregion.models.task_modules import CurriculumBoxJitter
from mmregion.registry import HOOKS


def _runner(max_iters=10):
    model = nn.Module()
    model.box_jitter = CurriculumBoxJitter()
    hub = MessageHub.get_instance('test_ccop_curriculum_hook')
    return SimpleNamespace(
        model=model, iter=0, max_iters=max_iters, message_hub=hub)


def test_hook_moves_difficulty_linearly_and_logs():
    hook = HOOKS.build(dict(type='CCOPCurriculumHook'))
    runner = _runner()
    hook.before_train(runner)
    iou = []
    for it in range(0, 10):
        runner.iter = it
        hook.before_train_iter(runner, batch_idx=it)
        iou.append(
            runner.message_hub.get_scalar(
                'train/curriculum/iou_thr').current())
    steps = [b - a for a, b in zip(iou, iou[1:])]
    assert iou[0] == pytest.approx(0.8)
    assert steps == pytest.approx([-0.04] * 9)  # (0.4 - 0.8) / 10 per iter
    hub = runner.message_hub
    assert hub.get_scalar('train/curriculum/progress').current() == \
        pytest.approx(0.9)
    assert hub.get_scalar('train/curriculum/mag_xy').current() == \
        pytest.approx(0.15 + 0.9 * 0.45)
    assert hub.get_scalar('train/curriculum/mag_wh').current() == \
        pytest.approx(0.35 + 0.9 * 1.05)


def test_hook_checkpoint_roundtrip_and_missing_jitter():
    hook = HOOKS.build(dict(type='CCOPCurriculumHook'))
    runner = _runner()
    runner.iter = 6
    hook.before_train_iter(runner, batch_idx=6)
    ckpt = dict(meta=dict())
    hook.before_save_checkpoint(runner, ckpt)
    assert ckpt['meta']['curriculum']['progress'] == pytest.approx(0.6)
    resumed = _runner()
    hook.after_load_checkpoint(resumed, ckpt)
    assert resumed.model.box_jitter.current()['iou_thr'] == \
        pytest.approx(0.56)
    bad = SimpleNamespace(model=nn.Linear(1, 1))
    with pytest.raises(AttributeError, match='box_jitter'):
        hook.before_train(bad)
