"""``--resume`` with another learning rate (issue 26 item 3).

The NaN guard says to resume "with a lower learning rate"; mmengine's
resume restored the checkpoint's lr whatever the config said.
``ResumeLrHook`` (added by ``tools/train.py --resume``) makes the config's
lr win, logged, with the schedule continuing from the resumed iteration.
"""
import glob
import os.path as osp
import sys

import pytest
from mmengine.config import Config

from mmregion.engine.hooks import ResumeLrHook

SCHED = [dict(type='MultiStepLR', milestones=[2], gamma=0.5, by_epoch=False)]


def _lrs(runner):
    return [g['lr'] for g in runner.optim_wrapper.param_groups]


def _log(work_dir):
    return ''.join(
        open(p).read()
        for p in glob.glob(osp.join(work_dir, '**', '*.log'), recursive=True))


@pytest.mark.parametrize('new_lr', [0.1, 0.001])
def test_config_lr_wins_over_resumed_one(tmp_path, toy, new_lr):
    runner, _ = toy.build_runner(
        tmp_path, toy.ToyModel(), max_iters=3, param_scheduler=SCHED)
    runner.train()
    assert _lrs(runner) == [pytest.approx(0.05)]  # 0.1 after the milestone

    lrs_seen = []

    class Probe(toy.RecordHook):

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            lrs_seen.append(_lrs(runner)[0])

    resumed, _ = toy.build_runner(
        tmp_path,
        toy.ToyModel(),
        max_iters=5,
        param_scheduler=SCHED,
        resume=True,
        lr=new_lr,
        hooks=[ResumeLrHook(), Probe()])
    resumed.train()
    # the schedule continues from iteration 3 (past the milestone) with the
    # config's base lr
    assert lrs_seen == [pytest.approx(new_lr * 0.5)] * 2
    sched = resumed.param_schedulers[0]
    assert sched.base_values == [pytest.approx(new_lr)]
    log = _log(tmp_path)
    if new_lr == 0.1:  # same config: nothing overridden
        assert 'Resume: the config sets another learning rate' not in log
    else:
        assert 'base lr 0.001 (config) replaces the resumed one; current ' \
            'lr 0.05 -> 0.0005' in log


def test_train_resume_adds_the_hook():
    sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools'))
    try:
        import train
    finally:
        sys.path.pop(0)
    cfg = Config(dict(work_dir='w', optim_wrapper=dict(type='OptimWrapper')))
    args = train.parse_args(['c.py', '--resume'])
    cfg = train.merge_args(cfg, args)
    assert [h['type'] for h in cfg.custom_hooks] == ['mmregion.ResumeLrHook']
    cfg = train.merge_args(
        Config(dict(work_dir='w')), train.parse_args(['c.py']))
    assert not cfg.get('custom_hooks')
