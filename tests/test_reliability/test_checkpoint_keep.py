"""SafeCheckpointHook: a kill during a save never loses the last checkpoint.

mmengine's ``CheckpointHook`` deletes the oldest kept checkpoint before it
writes the new one: with ``max_keep_ckpts=1`` a kill during the save left no
checkpoint at all. Here training runs in a forked child that SIGKILLs itself
at a chosen point of the save of ``iter_3.pth``; the parent checks the files
and resumes.
"""
import os
import os.path as osp
import signal

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS

import mmregion  # noqa: F401
from mmregion.engine.hooks import SafeCheckpointHook
from mmregion.registry import HOOKS
from mmregion.utils import load_checkpoint_safely
from mmregion.utils.atomic_io import (AtomicFile, AtomicLocalBackend,
                                      is_atomic_tmp_file)


class _FilesAtStart(Hook):
    """The work_dir listing when the first iteration starts."""
    priority = 'LOWEST'

    def __init__(self):
        self.names = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.names is None:
            self.names = sorted(os.listdir(runner.work_dir))


def _runner(toy, work_dir, max_iters, resume=False, hooks=()):
    runner, _ = toy.build_runner(
        work_dir,
        toy.ToyModel(),
        max_iters=max_iters,
        checkpoint=dict(max_keep_ckpts=1),
        resume=resume,
        hooks=hooks)
    return runner


def _train_and_die(toy, work_dir, patch):
    """Fork: train to 4 iterations, SIGKILLed where ``patch`` says."""
    pid = os.fork()
    if pid == 0:
        try:
            patch()
            _runner(toy, work_dir, max_iters=4).train()
        finally:
            os._exit(3)  # not killed: the parent's assertion fails
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and \
        os.WTERMSIG(status) == signal.SIGKILL, status


def _last(work_dir):
    with open(osp.join(str(work_dir), 'last_checkpoint')) as f:
        return f.read().strip()


def _kill_during_write_of_iter_3():
    orig_put = AtomicLocalBackend.put

    def put(self, obj, filepath):
        if osp.basename(str(filepath)) != 'iter_3.pth':
            return orig_put(self, obj, filepath)
        f = AtomicFile(filepath, 'wb')  # half of the file, then the kill
        f.write(obj[:len(obj) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    AtomicLocalBackend.put = put


def test_registered_for_the_mmregion_scope():
    assert HOOKS.get('CheckpointHook') is SafeCheckpointHook
    assert HOOKS.get('SafeCheckpointHook') is SafeCheckpointHook
    # mmengine's own registry (other scopes) is left alone
    assert MMENGINE_HOOKS.get('CheckpointHook') is not SafeCheckpointHook


def test_kill_during_save_with_max_keep_1_then_resume(toy, tmp_path):
    _train_and_die(toy, tmp_path, _kill_during_write_of_iter_3)
    # the previous checkpoint survived and last_checkpoint names it
    ckpts = sorted(p.name for p in tmp_path.glob('*.pth'))
    assert ckpts == ['iter_2.pth']
    assert _last(tmp_path) == str(tmp_path / 'iter_2.pth')
    assert load_checkpoint_safely(_last(tmp_path))['meta']['iter'] == 2
    stale = [n for n in os.listdir(tmp_path) if is_atomic_tmp_file(n)]
    assert len(stale) == 1 and stale[0].startswith('.iter_3.pth.'), stale

    # --resume continues from iteration 2 to the end
    start = _FilesAtStart()
    runner = _runner(toy, tmp_path, max_iters=4, resume=True, hooks=[start])
    runner.train()
    assert runner.iter == 4
    # the dead writer's temporary file was removed before training went on
    assert not any(is_atomic_tmp_file(n) for n in start.names), start.names
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_4.pth']
    assert _last(tmp_path) == str(tmp_path / 'iter_4.pth')
    assert not any(is_atomic_tmp_file(n) for n in os.listdir(tmp_path))


def test_kill_before_old_checkpoint_is_removed(toy, tmp_path):
    """Killed after the new checkpoint is complete but before the old one is
    removed: both exist, the resumed run removes the old one."""

    def patch():
        orig = SafeCheckpointHook._remove_ckpt

        def remove(self, runner, step):
            if step == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return orig(self, runner, step)

        SafeCheckpointHook._remove_ckpt = remove

    _train_and_die(toy, tmp_path, patch)
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == [
        'iter_2.pth', 'iter_3.pth'
    ]
    assert _last(tmp_path) == str(tmp_path / 'iter_3.pth')
    start = _FilesAtStart()
    runner = _runner(toy, tmp_path, max_iters=4, resume=True, hooks=[start])
    runner.train()
    assert 'iter_2.pth' not in start.names  # removed on resume
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_4.pth']


def test_nonfinite_state_is_not_saved(toy, tmp_path):
    """An inf BN running_var (with a finite loss) is refused at the save:
    last_checkpoint keeps naming the last finite checkpoint."""
    import torch.nn as nn
    from mmengine.logging import MessageHub

    class _BNToy(toy.ToyModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Sequential(
                nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))

        def forward(self, inputs, data_samples=None, mode='tensor'):
            if MessageHub.get_current_instance().get_info('iter') == 2:
                inputs = inputs * 1e30  # batch variance overflows to inf
            return super().forward(inputs, data_samples, mode)

    runner, _ = toy.build_runner(tmp_path, _BNToy(), max_iters=4)
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    msg = str(info.value)
    assert 'running_var' in msg and 'iter_3.pth was not saved' in msg, msg
    assert str(tmp_path / 'iter_2.pth') in msg
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == [
        'iter_1.pth', 'iter_2.pth'
    ]
    assert _last(tmp_path) == str(tmp_path / 'iter_2.pth')
    state = load_checkpoint_safely(_last(tmp_path))['state_dict']
    assert all(
        torch.isfinite(v).all() for v in state.values()
        if v.is_floating_point())
