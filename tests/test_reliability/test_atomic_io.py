"""Atomic writes: a kill at any moment leaves a complete file or none."""
import os
import os.path as osp
import random
import signal
import stat
import time

import numpy as np
import pytest
import torch

import mmregion  # noqa: F401
from mmregion.engine.hooks.checkpoint_hook import write_last_checkpoint
from mmregion.utils import atomic_io, load_checkpoint_safely
from mmregion.utils.atomic_io import (AtomicFile, AtomicLocalBackend,
                                      atomic_backend_args, atomic_save,
                                      atomic_write, is_atomic_tmp_file)

N = 1 << 20  # 4 MB of float32 per checkpoint: long enough to kill mid-write


def _tmp_files(d):
    return sorted(n for n in os.listdir(d) if is_atomic_tmp_file(n))


def test_atomic_write_commit_and_failure(tmp_path):
    path = tmp_path / 'sub' / 'a.txt'
    with atomic_write(path, 'w') as f:
        f.write('old')
    assert path.read_text() == 'old'
    with pytest.raises(RuntimeError):
        with atomic_write(path, 'w') as f:
            f.write('new, half written')
            raise RuntimeError('crash inside the write')
    assert path.read_text() == 'old'
    assert _tmp_files(path.parent) == []
    with pytest.raises(ValueError, match='mode'):
        atomic_write(path, 'a').__enter__()
    with pytest.raises(FileExistsError):
        with atomic_write(path, 'x') as f:
            f.write('x')
    # same permissions as a plain open() (umask), not mkstemp's 0o600
    plain = tmp_path / 'plain.txt'
    plain.write_text('p')
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(
        os.stat(plain).st_mode)


def test_atomic_save_roundtrip(tmp_path):
    obj = dict(state_dict=dict(w=torch.arange(5.)), meta=dict(iter=3))
    atomic_save(obj, tmp_path / 'c.pth')
    out = load_checkpoint_safely(str(tmp_path / 'c.pth'))
    assert torch.equal(out['state_dict']['w'], obj['state_dict']['w'])
    assert out['meta'] == dict(iter=3)


def test_mmengine_writes_go_through_atomic_backend(tmp_path):
    """mmengine's entry points write atomically through the registered
    backend, and ``import mmregion`` leaves mmengine's own writers alone."""
    import builtins

    import mmengine.fileio as fileio
    from mmengine.fileio import LocalBackend
    from mmengine.hooks import checkpoint_hook
    from mmengine.runner.checkpoint import save_checkpoint

    args = atomic_backend_args()
    assert type(fileio.get_file_backend(
        str(tmp_path), backend_args=args)) is AtomicLocalBackend
    assert type(
        fileio.get_file_backend(
            str(tmp_path), backend_args=args,
            enable_singleton=True)) is AtomicLocalBackend
    # no import-time patching: 'local' is mmengine's, open is the builtin
    assert type(fileio.get_file_backend(str(tmp_path))) is LocalBackend
    assert getattr(checkpoint_hook, 'open', builtins.open) is builtins.open

    save_checkpoint(
        dict(w=torch.ones(3)), str(tmp_path / 'x.pth'), backend_args=args)
    fileio.dump(dict(a=1), str(tmp_path / 'x.json'), backend_args=args)
    assert load_checkpoint_safely(str(tmp_path / 'x.pth'))['w'].sum() == 3
    assert fileio.load(str(tmp_path / 'x.json')) == dict(a=1)
    write_last_checkpoint(str(tmp_path), str(tmp_path / 'x.pth'))
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path /
                                                             'x.pth')
    assert _tmp_files(tmp_path) == []


def test_kill_inside_write_keeps_previous_file(tmp_path):
    """Deterministic: the writer dies with half of the new file written."""
    path = tmp_path / 'iter_1.pth'
    atomic_save(dict(v=torch.zeros(4)), path)
    old = path.read_bytes()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: write half of a new checkpoint, then hang
        try:
            os.close(r)
            f = AtomicFile(path, 'wb')
            f.write(b'\0' * 1000)
            f.flush()
            os.write(w, b'1')
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(w)
    assert os.read(r, 1) == b'1'
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(r)
    assert path.read_bytes() == old  # the previous checkpoint is intact
    stale = _tmp_files(tmp_path)
    assert len(stale) == 1 and stale[0].startswith('.iter_1.pth.')
    # the leftover is hidden and not a *.pth: never taken for a checkpoint
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_1.pth']
    # the next write of the same target removes the dead writer's file
    atomic_save(dict(v=torch.ones(4)), path)
    assert _tmp_files(tmp_path) == []
    assert load_checkpoint_safely(str(path))['v'].sum() == 4


def _save_loop(ckpt, work_dir, start):
    """Child process: save versions start, start+1, ... until killed, as
    mmregion's CheckpointHook writes them."""
    from mmengine.runner.checkpoint import save_checkpoint
    try:
        v = start
        while True:
            w = torch.from_numpy(np.full(N, v, dtype=np.float32))
            save_checkpoint(
                dict(meta=dict(version=v), state_dict=dict(w=w)),
                ckpt,
                backend_args=atomic_backend_args())
            write_last_checkpoint(work_dir, ckpt)
            v += 1
    finally:
        os._exit(1)


def test_sigkill_during_checkpoint_loop(tmp_path):
    """A save_checkpoint loop SIGKILLed at random moments, 6 times."""
    from mmengine.runner.checkpoint import find_latest_checkpoint
    work = str(tmp_path)
    ckpt = osp.join(work, 'latest.pth')
    rng = random.Random(0)
    last_version, seen = -1, 0
    for rnd in range(6):
        pid = os.fork()
        if pid == 0:
            _save_loop(ckpt, work, start=rnd * 100000)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

        if osp.exists(ckpt):
            seen += 1
            out = load_checkpoint_safely(ckpt)
            v = out['meta']['version']
            assert v >= last_version
            assert torch.equal(out['state_dict']['w'],
                               torch.full((N, ), float(v)))
            last_version = v
        assert find_latest_checkpoint(work) in (None, ckpt)
        names = os.listdir(work)
        assert [n for n in names if n.endswith('.pth')
                ] == (['latest.pth'] if osp.exists(ckpt) else [])
        assert all(
            n in ('latest.pth', 'last_checkpoint') or is_atomic_tmp_file(n)
            for n in names), names
    assert seen >= 3, 'the loop never got to write: test not meaningful'


def test_runner_checkpoint_hook_writes_atomically(tmp_path, toy, monkeypatch):
    from mmengine.runner.checkpoint import find_latest_checkpoint
    puts, commits = [], []
    orig_put, orig_commit = AtomicLocalBackend.put, AtomicFile.commit

    def spy_put(self, obj, filepath):
        puts.append(osp.basename(str(filepath)))
        return orig_put(self, obj, filepath)

    def spy_commit(self):
        commits.append(osp.basename(self.path))
        return orig_commit(self)

    monkeypatch.setattr(AtomicLocalBackend, 'put', spy_put)
    monkeypatch.setattr(AtomicFile, 'commit', spy_commit)
    runner, _ = toy.build_runner(tmp_path, toy.ToyModel(), max_iters=2)
    runner.train()
    assert puts == ['iter_1.pth', 'iter_2.pth']
    # checkpoint, then last_checkpoint: both through an AtomicFile
    assert commits == [
        'iter_1.pth', 'last_checkpoint', 'iter_2.pth', 'last_checkpoint'
    ]
    last = find_latest_checkpoint(str(tmp_path))
    assert last == osp.join(str(tmp_path), 'iter_2.pth')
    assert load_checkpoint_safely(last)['meta']['iter'] == 2
    assert _tmp_files(tmp_path) == []


def test_atomic_write_json_and_stale_files_of_other_hosts(tmp_path):
    atomic_io.atomic_write_json(tmp_path / 'a.json', dict(b=1), indent=1)
    assert (tmp_path / 'a.json').read_text() == '{\n "b": 1\n}'
    other = tmp_path / '.a.json.otherhost.1.0123abcd.tmp'
    mine = tmp_path / f'.a.json.{atomic_io._HOST}.{os.getpid()}.0123abcd.tmp'
    other.write_text('x')
    mine.write_text('x')
    assert atomic_io.remove_stale_tmp_files(tmp_path) == []
    assert sorted(
        atomic_io.remove_stale_tmp_files(
            tmp_path, other_hosts=True,
            own_pid=True)) == sorted([other.name, mine.name])
