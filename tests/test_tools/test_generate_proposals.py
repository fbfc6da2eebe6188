import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tool_utils import load_tool

from mmregion.proposals import generate_proposals, load_proposal_store
from mmregion.proposals.generate import FAILURE_CHECK_AFTER
from mmregion.testing.toy_data import make_toy_coco

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


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    # the first FAILURE_CHECK_AFTER shards are held back until the failure
    # ratio is decided (then written together), as many more one by one
    # (~30 ms each at 48 px), so a kill at the first shard lands mid-run
    num = 2 * FAILURE_CHECK_AFTER
    make_toy_coco(
        str(tmp_path / 'data'), num_train=num, num_val=1, size=48, seed=0)
    src = str(tmp_path / 'data' / 'annotations' / 'instances_train.json')
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
