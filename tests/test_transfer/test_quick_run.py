"""(slow) A reduced --quick run of the transfer protocol end to end through
tools/benchmark_transfer.py: every stage kind runs, the report says that it
proves nothing, and a second run resumes without redoing anything."""
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = osp.join(ROOT, 'configs/protocols/transfer_toy_cpu.py')


@pytest.mark.slow
def test_reduced_quick_run(tmp_path):
    proto = tmp_path / 'transfer_test.py'
    # the quick sizes, minus what repeats a stage kind: MoCo v2 and CCOP
    # (on ground-truth boxes: no selective search), one curve point, the
    # frozen mode from random init only
    proto.write_text(f'''_base_ = [{TOY!r}]
quick = dict(
    pretrain=dict(
        curve_every=6,
        methods=dict(
            _delete_=True,
            mocov2=dict(config='configs/mmregion/mocov2_r18_toy.py',
                        boxes=None),
            ccop=dict(config='configs/mmregion/ccop_r18_toy.py',
                      boxes='gt'))),
    detection=dict(modes=['frozen'], runs=[]))
''')
    work, out = tmp_path / 'work', tmp_path / 'out'
    cmd = [
        sys.executable, 'tools/benchmark_transfer.py',
        str(proto), '--quick', '--work-dir',
        str(work), '--out',
        str(out)
    ]
    env = dict(__import__('os').environ, PYTHONPATH=ROOT)
    run = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert 'prove nothing' in run.stdout
    stem = out / 'transfer_test_quick'
    report = json.loads((stem.with_suffix('.json')).read_text())
    assert report['mode'] == 'quick' and 'prove nothing' in report['note']
    probe = report['probe']['table']
    assert set(probe) == {'random', 'mocov2', 'ccop'}
    for row in probe.values():
        assert len(row['linear_per_seed']) == 1
        assert 0 <= row['linear'][0] <= 100
    assert 'mcnemar_p' in probe['ccop']['vs_random']['per_seed']['0']
    assert report['gate']['passed'] in (True, False)
    assert report['anchors']['coverage'] >= 0.98
    det = report['detection']['frozen']['random']
    assert len(det['bbox_mAP_50_per_seed']) == 1
    names = [c['name'] for c in report['claims']]
    assert len(names) == 5 and all('verdict' in c for c in report['claims'])
    md = stem.with_suffix('.md').read_text()
    assert 'prove nothing' in md and '## Conditions' in md
    assert stem.with_suffix('.png').read_bytes()[:4] == b'\x89PNG'
    # everything is done: a rerun only rewrites the report
    again = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0
    assert 'done earlier (skipped)' in again.stdout
    assert '] start' not in again.stdout
