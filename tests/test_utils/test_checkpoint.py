"""Safe checkpoint loading: runner round trip with weights_only=True kept."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

import mmregion  # noqa: F401  (installs the safe loader)
from mmregion.utils import UnsafeCheckpointError, load_checkpoint_safely


class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - 1.0)**2).mean())
        return out


class _ToyDataset(torch.utils.data.Dataset):
    metainfo = dict()

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(2, generator=g), data_samples=None)


def _runner(work_dir, max_iters, resume=False, load_from=None):
    return Runner(
        model=_ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=_ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        default_scope='mmregion',
        experiment_name=f'exp_{max_iters}_{resume}_{os.getpid()}')


def test_runner_checkpoint_round_trip(tmp_path):
    work_dir = str(tmp_path)
    _runner(work_dir, max_iters=4).train()
    ckpt = osp.join(work_dir, 'iter_4.pth')
    assert osp.isfile(ckpt)
    # mmengine stores numpy arrays and HistoryBuffer objects in the message
    # hub: this is exactly what the plain weights_only loader refuses.
    loaded = _load_checkpoint(ckpt, map_location='cpu')
    hub = loaded['message_hub']['log_scalars']
    assert any(type(v).__name__ == 'HistoryBuffer' for v in hub.values())
    # resume continues from iteration 4 and trains to 6
    runner = _runner(work_dir, max_iters=6, resume=True)
    runner.train()
    assert runner.iter == 6
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
    # load_from (weights only) works too
    runner = _runner(str(tmp_path / 'b'), max_iters=1, load_from=ckpt)
    runner.train()
    w4 = loaded['state_dict']['linear.weight']
    assert w4.shape == (1, 2)


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned > {}'.format(_Evil.target), ))


def test_malicious_pickle_is_refused(tmp_path):
    target = tmp_path / 'pwned.txt'
    _Evil.target = str(target)
    bad = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': _Evil()}}, bad)
    with pytest.raises(UnsafeCheckpointError, match='Refused to load'):
        _load_checkpoint(str(bad), map_location='cpu')
    with pytest.raises(UnsafeCheckpointError, match=str(bad)):
        load_checkpoint_safely(str(bad))
    assert not target.exists(), 'the pickled payload must never run'


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_safely(str(tmp_path / 'nope.pth'))


def test_numpy_meta_loads(tmp_path):
    path = tmp_path / 'np.pth'
    torch.save(
        {
            'state_dict': {
                'w': torch.ones(1)
            },
            'meta': {
                'seed': np.int64(3),
                'arr': np.arange(3.0),
                'f': np.float32(1.5)
            }
        }, path)
    ckpt = load_checkpoint_safely(str(path))
    assert int(ckpt['meta']['seed']) == 3
    np.testing.assert_array_equal(ckpt['meta']['arr'], np.arange(3.0))


def test_getattr_is_restricted_to_history_buffer(tmp_path):
    """Only getattr(HistoryBuffer, <statistic>) is allowed, not e.g.
    os.system."""
    import pickle

    class _GetattrEvil:

        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    bad = tmp_path / 'getattr.pth'
    torch.save({'meta': {'x': _GetattrEvil()}}, bad)
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        load_checkpoint_safely(str(bad))
