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


def test_numpy_state_gadgets_are_refused(tmp_path):
    """issue 26 item 1: a dtype state with object fields (a pointer read
    from the data: SIGSEGV) or a field offset (heap read as data) is refused
    before numpy sees it; checked in a child process."""
    import subprocess
    import sys
    script = """
import sys, numpy as np, torch
class D:
    def __init__(s, name, state): s.name, s.state = name, state
    def __reduce__(s): return (np.dtype, (s.name, False, True), s.state)
class A:
    def __init__(s, shape, d, data): s.args = (shape, d, data)
    def __reduce__(s):
        shape, d, data = s.args
        return (np.core.multiarray._reconstruct, (np.ndarray, (0,), b'b'),
                (1, shape, d, False, data))
ptr = D('V8', (3, '|', None, ('a',), {'a': (np.dtype('O'), 0)}, 8, 1, 16))
off = D('f4', (3, '<', None, ('a',), {'a': (np.dtype('f4'), 100000)}, 4, 1,
               16))
f8 = D('f8', (3, '<', None, None, None, -1, -1, 0))
out = sys.argv[1]
torch.save({'meta': {'x': A((4,), ptr, b'A' * 32)}}, out + '/ptr.pth')
torch.save({'meta': {'x': A((64, 4), off, bytes(1024))}}, out + '/off.pth')
torch.save({'meta': {'x': A((10**6,), f8, bytes(8))}}, out + '/short.pth')
"""
    subprocess.run([sys.executable, '-c', script,
                    str(tmp_path)],
                   check=True,
                   timeout=120)
    code = ('import mmregion, sys\n'
            'from mmregion.utils.checkpoint import '
            'load_checkpoint_safely, UnsafeCheckpointError\n'
            'for name in ("ptr", "off", "short"):\n'
            '    try:\n'
            '        load_checkpoint_safely(sys.argv[1] + f"/{name}.pth")\n'
            '        print(name, "LOADED")\n'
            '    except UnsafeCheckpointError as e:\n'
            '        print(name, e)\n')
    out = subprocess.run(
        [sys.executable, '-c', code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300)
    assert out.returncode == 0, (out.returncode, out.stderr[-500:])
    lines = dict(line.split(' ', 1) for line in out.stdout.splitlines())
    for name, match in [('ptr', "dtype 'V8'"), ('off', 'fields'),
                        ('short', '8 data bytes, expected 8000000')]:
        assert match in lines[name] and f'{name}.pth' in lines[name]


def test_loaded_arrays_are_plain_data_and_save_as_ndarray(tmp_path):
    import pickle
    path = tmp_path / 'a.pth'
    arr = np.arange(6, dtype='>i4').reshape(2, 3).T  # big-endian, Fortran
    torch.save({'meta': {
        'a': arr,
        'b': np.zeros(0),
        's': np.float16(2)
    }}, path)
    meta = load_checkpoint_safely(str(path))['meta']
    np.testing.assert_array_equal(meta['a'], arr)
    # numpy's own unpickling gives the same (native) dtype
    assert meta['a'].dtype == pickle.loads(pickle.dumps(arr)).dtype
    assert meta['b'].shape == (0, )
    assert float(meta['s']) == 2.0
    # saved again (a resumed run's message hub): a plain ndarray, no class
    # of ours in the pickle
    data = pickle.dumps(meta['a'], protocol=2)
    assert b'mmregion' not in data
    assert type(pickle.loads(data)) is np.ndarray


@pytest.mark.parametrize('path,match', [('', 'is empty'),
                                        ('a\0b.pth', 'cannot be used')])
def test_empty_or_nul_checkpoint_path(path, match):
    """issue 26 minor: an empty last_checkpoint gave "checkpoint  can not
    be found", a NUL in it a bare ValueError."""
    from mmregion.utils import CheckpointError
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint_safely(path)
