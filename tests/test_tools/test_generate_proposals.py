import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tool_utils import load_tool

from mmregion.proposals import generate_proposals, load_proposal_store

REPO_ROOT = __file__.rsplit('/tests/', 1)[0]
TOOL = f'{REPO_ROOT}/tools/generate_proposals.py'

_load_tool = load_tool


def test_cli_summary(toy_coco, tmp_path, capsys):
    out = tmp_path / 'grid'
    _load_tool('generate_proposals').main([
        str(toy_coco / 'annotations' / 'instances_val.json'),
        str(out), '--method', 'grid', '--grid-sizes', '2', '3', '--shard-size',
        '3'
    ])
    captured = capsys.readouterr()
    assert '4 images; 4 done, 0 skipped' in captured.out
    assert '13.0 boxes/image' in captured.out
    assert 'img/s' in captured.err  # progress line
    store = load_proposal_store(str(out))
    assert store.keys() == [f'{i:06d}.jpg' for i in range(4)]


def test_browse_proposals(toy_coco, toy_proposals, tmp_path, capsys):
    out = tmp_path / 'browse'
    _load_tool('browse_proposals').main([
        str(toy_proposals),
        str(toy_coco / 'train'),
        str(out), '--num', '3', '--topk', '5'
    ])
    assert sorted(os.listdir(out)) == [f'{i:06d}.png' for i in range(3)]
    assert 'Wrote 3 images' in capsys.readouterr().out


def _small_images(root, num=100, size=48):
    """``num`` seeded ``size``-px images with a few rectangles each."""
    import cv2
    os.makedirs(root)
    rng = np.random.default_rng(0)
    for i in range(num):
        img = np.full((size, size, 3), 128, np.uint8)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, size - 12, 2))
            cv2.rectangle(img, (x, y), (x + 12, y + 12),
                          rng.integers(0, 255, 3).tolist(), -1)
        cv2.imwrite(os.path.join(root, f'{i:03d}.png'), img)
    return root


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    # 100 images: the first 50 shards are held back until the failure ratio
    # is decided (then written together), the other 50 one by one (~20 ms
    # each), so a kill at the first shard always lands mid-run
    num = 100
    src = _small_images(str(tmp_path / 'img'), num)
    out = tmp_path / 'killed'
    cmd = [
        sys.executable, TOOL, src,
        str(out), '--mode', 'fast', '--shard-size', '1', '--no-progress'
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if (out / 'shard-00000.npz').exists():
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # whatever was left is complete: every shard present loads (a killed
    # write can only leave a hidden '.*.tmp' file, removed by the next run)
    for name in os.listdir(out):
        if name.endswith('.npz'):
            assert np.load(out / name)['boxes'].shape[1] == 4
    done_before = len([n for n in os.listdir(out) if n.endswith('.npz')])
    assert killed and done_before < num
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert f'{done_before} skipped' in res.stdout
    ref = tmp_path / 'ref'
    generate_proposals(
        src, str(ref), mode='fast', shard_size=1, progress=False)
    a, b = load_proposal_store(str(out)), load_proposal_store(str(ref))
    assert a.keys() == b.keys() and len(a) == num
    for k in a.keys():
        np.testing.assert_array_equal(a.get(k), b.get(k))
    assert not [n for n in os.listdir(out) if n.endswith('.tmp')]
