"""Concurrent and killed proposal runs (issue 16 items 5 and 6)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mmregion.proposals import generate_proposals, load_proposal_store
from mmregion.proposals.writer import (LOCK_FILE, ProposalDirBusyError,
                                       ProposalDirLock, ProposalWriter)
from mmregion.utils.input_checks import InputError

REPO_ROOT = __file__.rsplit('/tests/', 1)[0]
TOOL = f'{REPO_ROOT}/tools/generate_proposals.py'
KW = dict(method='grid', grid_sizes=(2, ), shard_size=3, progress=False)


def _env():
    return dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')


def _hold_lock(path):
    """A child process that holds the lock of ``path`` until killed."""
    code = ('import sys, time\n'
            'from mmregion.proposals.writer import ProposalDirLock\n'
            f'ProposalDirLock({str(path)!r}).acquire()\n'
            'print("locked", flush=True)\n'
            'time.sleep(120)\n')
    proc = subprocess.Popen([sys.executable, '-c', code],
                            stdout=subprocess.PIPE,
                            env=_env(),
                            text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def test_second_run_is_refused_and_dead_lock_taken_over(toy_coco, tmp_path):
    out = tmp_path / 'out'
    holder = _hold_lock(out)
    try:
        with pytest.raises(ProposalDirBusyError) as info:
            generate_proposals(str(toy_coco / 'val'), str(out), **KW)
        msg = str(info.value)
        assert f'pid {holder.pid}' in msg and str(out) in msg
        assert '\n' not in msg
        assert not (out / 'meta.json').exists()  # nothing touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder died by kill -9: its lock is taken over
    info = json.loads((out / LOCK_FILE).read_text())
    assert info['pid'] == holder.pid
    s = generate_proposals(str(toy_coco / 'val'), str(out), **KW)
    assert s['done'] == 4
    assert (out / LOCK_FILE).read_text() == ''  # released


def test_live_writers_temp_files_are_kept(toy_coco, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    from mmregion.utils.atomic_io import _HOST
    live = out / f'.shard-00000.npz.{_HOST}.{os.getppid()}.0123abcd.tmp'
    dead = out / f'.shard-00001.npz.{_HOST}.999999999.0123abcd.tmp'
    live.write_bytes(b'x')
    dead.write_bytes(b'x')
    generate_proposals(str(toy_coco / 'val'), str(out), **KW)
    assert live.exists() and not dead.exists()


def test_lock_in_process(tmp_path):
    lock = ProposalDirLock(str(tmp_path / 'o')).acquire()
    with pytest.raises(ProposalDirBusyError, match=f'pid {os.getpid()}'):
        ProposalDirLock(str(tmp_path / 'o')).acquire()
    lock.release()
    with ProposalDirLock(str(tmp_path / 'o')):
        pass


def test_shard_of_other_settings_is_detected(toy_coco, tmp_path):
    """A shard written by a run with other settings (the concurrent
    --overwrite --topk 10 case) is an error on resume and on load."""
    src = str(toy_coco / 'train')
    a, b = tmp_path / 'a', tmp_path / 'b'
    generate_proposals(src, str(a), **KW)
    generate_proposals(src, str(b), **dict(KW, grid_sizes=(3, )))
    os.replace(b / 'shard-00001.npz', a / 'shard-00001.npz')
    with pytest.raises(InputError, match='shard-00001.npz.*other settings'):
        load_proposal_store(str(a))
    with pytest.raises(InputError, match='shard-00001.npz.*--overwrite'):
        generate_proposals(src, str(a), **KW)
    s = generate_proposals(
        src, str(a), overwrite=True, **dict(KW, grid_sizes=(3, )))
    assert s['done'] == 8 and s['skipped'] == 0  # b's settings now
    assert len(load_proposal_store(str(a)).get('000000.jpg')) == 9


def test_corrupt_shard_is_named_at_load(toy_coco, tmp_path):
    out = tmp_path / 'out'
    generate_proposals(str(toy_coco / 'train'), str(out), **KW)
    data = (out / 'shard-00002.npz').read_bytes()
    (out / 'shard-00002.npz').write_bytes(data[:len(data) // 2])
    with pytest.raises(
            InputError, match='Corrupt proposal shard .*'
            'shard-00002.npz'):
        load_proposal_store(str(out))
    os.remove(out / 'shard-00002.npz')
    os.mkfifo(out / 'shard-00002.npz')  # would block a reader
    with pytest.raises(InputError, match='shard-00002.npz is not a regular'):
        load_proposal_store(str(out))
    meta = json.loads((out / 'meta.json').read_text())
    meta['shards'][0]['file'] = '../../etc/passwd'
    (out / 'meta.json').write_text(json.dumps(meta))
    with pytest.raises(InputError, match='meta.json.*shards'):
        load_proposal_store(str(out))


def test_writer_tolerates_old_shards_without_digest(tmp_path):
    keys = ['a.jpg', 'b.jpg']
    w = ProposalWriter(str(tmp_path), keys, shard_size=1, params=dict(a=1))
    w.write_shard(0, {'a.jpg': np.zeros((1, 4))})
    with np.load(w.shard_path(0)) as z:
        arrays = {k: z[k] for k in z.files if k != 'run_sha1'}
    with open(w.shard_path(0), 'wb') as f:
        np.savez(f, **arrays)
    assert w.is_done(0) and not w.is_done(1)


def _children(pid):
    kids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(name))
    return kids


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_workers_die_with_killed_parent(tmp_path):
    import cv2
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # noise: slow for the 'quality' search
        cv2.imwrite(
            str(imgs / f'{i}.png'),
            rng.integers(0, 255, (300, 300, 3), dtype=np.uint8))
    proc = subprocess.Popen([
        sys.executable, TOOL,
        str(imgs),
        str(tmp_path / 'out'), '--mode', 'quality', '--workers', '2',
        '--no-progress'
    ],
                            env=_env(),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        workers = []
        while time.time() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        assert len(workers) >= 2, 'the workers never started'
        time.sleep(0.5)  # let them run their initializer
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.05)
    left = [p for p in workers if _alive(p)]
    for p in left:  # do not leak them if the test fails
        os.kill(p, signal.SIGKILL)
    assert not left, f'workers {left} outlived their parent'


def test_store_regenerated_while_read_fails_loudly(toy_coco, tmp_path):
    """issue 26 item 2: an open store regenerated with other settings
    (--overwrite) must not mix two runs: the reader fails naming the
    shard, instead of 4 boxes for one image and 9 for the next."""
    src, out = str(toy_coco / 'train'), str(tmp_path / 'out')
    generate_proposals(src, out, **KW)
    store = load_proposal_store(out)
    assert len(store.get('000000.jpg')) == 4  # shard 0 now cached
    generate_proposals(src, out, overwrite=True, **dict(KW, grid_sizes=(3, )))
    assert len(store.get('000000.jpg')) == 4  # the cached shard: same run
    with pytest.raises(
            InputError,
            match='shard-00001.npz belongs to another'
            ' run.*regenerated while being read'):
        store.get('000003.jpg')
    with pytest.raises(InputError, match='another run'):
        store.keys()
    # a shard removed by a regeneration that has not rewritten it yet
    store = load_proposal_store(out)
    os.remove(os.path.join(out, 'shard-00002.npz'))
    with pytest.raises(InputError, match='shard-00002.npz disappeared'):
        store.get('000007.jpg')
    # a fresh reader sees the new run only
    generate_proposals(src, out, **dict(KW, grid_sizes=(3, )))
    fresh = load_proposal_store(out)
    assert {len(fresh.get(k)) for k in fresh.keys()} == {9}


class _Header:
    """A member that is only an .npy header declaring ``shape``."""

    def __init__(self, shape, descr='<f4'):
        self.shape, self.descr = shape, descr


def _rewrite_shard(path, **arrays):
    import io
    import zipfile
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data.update(arrays)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zf:
        for k, v in data.items():
            buf = io.BytesIO()
            if isinstance(v, _Header):
                np.lib.format.write_array_header_1_0(
                    buf,
                    dict(descr=v.descr, fortran_order=False, shape=v.shape))
                buf.write(bytes(1000))
            else:
                np.lib.format.write_array(buf, v)
            zf.writestr(k + '.npy', buf.getvalue())


@pytest.mark.parametrize(
    'name,value,match',
    [
        ('boxes', lambda b: b.astype(bool), 'bool'),
        ('boxes', lambda b: b.astype(np.complex64), 'complex64'),
        ('boxes', lambda b: b.astype('datetime64[s]'), 'datetime64'),
        ('boxes', lambda b: b.astype(np.int8), 'int8'),
        ('boxes', lambda b: b.astype(str), '<U'),
        ('offsets', lambda o: o.astype(np.uint64)[::-1].copy(), 'uint64'),
        ('offsets', lambda o: o[::-1].copy(), 'never decrease'),
        ('keys', lambda k: k[::-1].copy(), 'sorted and unique'),
        # a tiny compressed file declaring a huge array: refused from the
        # header, before anything is decompressed
        ('boxes', lambda b: _Header(
            (80_000_000, 4)), 'at most 1073741824 bytes'),
        ('keys', lambda k: _Header(
            (3, ), '<U32000000'), 'at most 4096 characters'),
    ])
def test_shard_arrays_are_checked(toy_coco, tmp_path, name, value, match):
    """issue 26 minor + item 4: wrong shard dtypes are not cast silently,
    decreasing offsets do not hand one image another's boxes, and declared
    sizes are checked against caps before allocating."""
    out = tmp_path / 'out'
    generate_proposals(str(toy_coco / 'train'), str(out), **KW)
    shard = out / 'shard-00001.npz'
    with np.load(shard) as z:
        _rewrite_shard(shard, **{name: value(z[name])})
    with pytest.raises(InputError, match=f'shard-00001.npz.*{match}'):
        load_proposal_store(str(out)).get('000003.jpg')
