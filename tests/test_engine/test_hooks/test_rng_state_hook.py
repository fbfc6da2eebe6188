"""RNGStateHook: torch's generator state travels with the checkpoint and
comes back on resume only (single process)."""
from types import SimpleNamespace
from unittest import mock

import torch

from mmregion.registry import HOOKS


def _runner(resume):
    return SimpleNamespace(
        iter=3, _resume=resume, logger=mock.MagicMock(name='logger'))


def test_state_saved_and_restored_on_resume():
    hook = HOOKS.build(dict(type='RNGStateHook'))
    torch.manual_seed(0)
    ckpt = {}
    hook.after_train_iter(_runner(True), 0)  # one process: nothing gathered
    hook.before_save_checkpoint(_runner(True), ckpt)
    state = ckpt['meta']['rng_state']
    assert state['torch'].dtype == torch.uint8
    expected = torch.rand(4)  # what the uninterrupted run draws next
    torch.manual_seed(123)  # another state, as in a fresh process
    hook.after_load_checkpoint(_runner(True), ckpt)
    torch.testing.assert_close(torch.rand(4), expected)


def test_load_from_leaves_the_generator_alone_and_old_checkpoints_warn():
    hook = HOOKS.build(dict(type='RNGStateHook'))
    torch.manual_seed(0)
    ckpt = {}
    hook.before_save_checkpoint(_runner(False), ckpt)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    hook.after_load_checkpoint(_runner(False), ckpt)  # load_from: no resume
    torch.testing.assert_close(torch.rand(3), expected)
    runner = _runner(True)
    hook.after_load_checkpoint(runner, dict(meta={}))
    (msg, ), _ = runner.logger.warning.call_args
    assert 'no rng_state' in msg
