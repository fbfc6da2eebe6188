"""Images and checkpoints that are FIFOs, too large, truncated or hostile.

A ``file_name`` naming a FIFO used to hang the data loader forever (it
blocked in ``open``); a truncated checkpoint gave a PyTorch zip error without
the file name, a hostile one a ~480-line traceback.
"""
import os
import pickle
import stat
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
import torch
from tool_utils import load_tool

import mmregion  # noqa: F401
from mmregion.apis.cli import explain_exception
from mmregion.datasets.transforms import LoadImageFromFileSafe
from mmregion.utils import (CheckpointError, CorruptCheckpointError,
                            UnsafeCheckpointError, load_checkpoint_safely)

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fifo_only = pytest.mark.skipif(
    not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')


def _load_with_timeout(transform, path, timeout=20):
    out = {}

    def run():
        out['result'] = transform(dict(img_path=str(path)))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():  # unblock the hung reader so the test can end
        fd = os.open(str(path), os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(5)
        pytest.fail(f'loading {path} blocked for {timeout} s')
    return out['result']


@fifo_only
def test_fifo_image_is_skipped_not_hung(tmp_path):
    LoadImageFromFileSafe.reset_counters()
    fifo = tmp_path / 'img.jpg'
    os.mkfifo(fifo)
    t = LoadImageFromFileSafe()
    assert _load_with_timeout(t, fifo) is None
    assert LoadImageFromFileSafe.num_corrupt == 1
    # a symlink to a FIFO and a character device are refused as well
    link = tmp_path / 'link.jpg'
    link.symlink_to(fifo)
    assert _load_with_timeout(t, link) is None
    if os.path.exists('/dev/zero'):
        assert _load_with_timeout(t, '/dev/zero') is None
    assert LoadImageFromFileSafe.num_corrupt >= 2


def test_image_size_bound(tmp_path, caplog):
    LoadImageFromFileSafe.reset_counters()
    img = np.zeros((8, 8, 3), np.uint8)
    ok, png = cv2.imencode('.png', img)
    path = tmp_path / 'a.png'
    path.write_bytes(png.tobytes())
    assert LoadImageFromFileSafe()(dict(img_path=str(path)))['img'].shape \
        == (8, 8, 3)
    small = LoadImageFromFileSafe(max_file_bytes=len(png) - 1)
    assert small(dict(img_path=str(path))) is None
    assert LoadImageFromFileSafe.num_corrupt == 1
    with pytest.raises(ValueError, match='max_file_bytes'):
        LoadImageFromFileSafe(max_file_bytes=0)


def _checkpoints(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1000))), good)
    data = good.read_bytes()
    (tmp_path / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'garbage.pth').write_bytes(b'not a checkpoint\n' * 10)

    class _Evil:

        def __reduce__(self):
            return (os.system, ('true', ))

    torch.save(dict(meta=_Evil()), tmp_path / 'evil.pth')
    return good


@pytest.mark.parametrize('name,cls,text', [
    ('truncated.pth', CorruptCheckpointError, 'truncated'),
    ('empty.pth', CorruptCheckpointError, 'empty'),
    ('garbage.pth', CorruptCheckpointError, 'truncated or not a checkpoint'),
    ('evil.pth', UnsafeCheckpointError, 'Refused to load'),
])
def test_bad_checkpoint_is_one_line_naming_the_file(tmp_path, name, cls, text):
    from mmengine.runner.checkpoint import _load_checkpoint
    _checkpoints(tmp_path)
    path = str(tmp_path / name)
    for load in (load_checkpoint_safely, _load_checkpoint):  # load_from,
        with pytest.raises(cls) as info:  # resume, init_cfg go through it
            load(path)
        msg = str(info.value)
        assert path in msg and text in msg and '\n' not in msg, msg
        assert info.value.__cause__ is None
        assert explain_exception(info.value) == msg  # tools/train.py line
    assert isinstance(info.value, CheckpointError)
    if cls is UnsafeCheckpointError:
        assert isinstance(info.value, pickle.UnpicklingError)


@fifo_only
def test_fifo_checkpoint_is_refused(tmp_path):
    os.mkfifo(tmp_path / 'fifo.pth')
    with pytest.raises(CorruptCheckpointError, match='not a regular file'):
        load_checkpoint_safely(str(tmp_path / 'fifo.pth'))


@pytest.mark.slow
def test_train_resume_bad_checkpoint_is_one_line(toy_coco, tmp_path):
    """tools/train.py --resume of a truncated checkpoint prints one line
    naming the file and exits 1 (no traceback). load_from and hostile files
    take the same path (see the test above)."""
    _checkpoints(tmp_path)
    config = os.path.join(ROOT, 'configs', 'mmregion', 'mocov2_r18_toy.py')
    path = str(tmp_path / 'truncated.pth')
    out = subprocess.run([
        sys.executable,
        os.path.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_coco}', '--resume', path
    ],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 1, out.stderr[-2000:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith('error: ')]
    assert len(errors) == 1 and path in errors[0], out.stderr[-2000:]
    assert 'truncated' in errors[0]
    assert 'Traceback' not in out.stdout + out.stderr


def test_converters_one_line_errors_and_file_mode(tmp_path):
    """extract_backbone / convert_proseco_to_ddetr: a bad checkpoint is one
    line naming it (exit 1); outputs get umask permissions, not 0600."""
    _checkpoints(tmp_path)
    for tool in ('extract_backbone.py', 'convert_proseco_to_ddetr.py'):
        mod = load_tool(tool[:-3])
        for bad in ('truncated.pth', 'evil.pth'):
            out = tmp_path / f'{tool}.{bad}.out'
            path = str(tmp_path / bad)
            err = _run_main(mod.main, [path, str(out)])
            lines = err.strip().splitlines()
            assert len(lines) == 1 and path in lines[0], err
            assert not out.exists()

    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    ckpt = tmp_path / 'proseco.pth'
    torch.save(
        dict(state_dict={
            'detector.backbone.w': torch.ones(2),
            'backbone.w': torch.ones(2)
        }), ckpt)
    conv = load_tool('convert_proseco_to_ddetr')
    assert conv.main([str(ckpt), str(tmp_path / 'ddetr.pth')]) == 0
    ext = load_tool('extract_backbone')
    assert ext.main([str(ckpt), str(tmp_path / 'bb.pth')]) == 0
    for out in ('ddetr.pth', 'bb.pth'):
        mode = stat.S_IMODE(os.stat(tmp_path / out).st_mode)
        assert mode == expected, (out, oct(mode))


def _run_main(main, argv):
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(
            io.StringIO()):
        rc = main(argv)
    assert rc == 1
    return err.getvalue()
