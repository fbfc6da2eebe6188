"""tools/check_gpu.py on CPU (--device cpu --tiny): the documented output."""
import json
import os.path as osp
import re

import pytest
from tool_utils import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS = ('mocov2', 'ccop', 'plrc', 'proseco', 'deformable_detr')


def _check_gpu():
    return load_tool('check_gpu')


@pytest.mark.slow
def test_check_gpu_cpu_tiny(tmp_path, capsys):
    out = tmp_path / 'check.json'
    rc = _check_gpu().main(
        ['--device', 'cpu', '--tiny', '--iters', '1', '--json',
         str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert 'ops: skipped (--device cpu' in text
    assert 'amp: skipped on cpu' in text
    assert '[fp32]' in text and '[amp]' not in text
    for name in MODELS:  # model, batch, images/s, step ms, n/a n/a
        assert re.search(rf'^{name}\s+2\s+\d+\.\d+\s+\d+\.\d\s+n/a\s+n/a$',
                         text, re.M), name
    assert re.search(
        r'^step-time ratios: ccop/mocov2 \d+\.\d\dx, '
        r'plrc/mocov2 \d+\.\d\dx, proseco/deformable_detr '
        r'\d+\.\d\dx$', text, re.M)
    assert text.rstrip().endswith('result: OK')
    res = json.loads(out.read_text())
    fp32 = res['precisions']['fp32']
    assert set(res['precisions']) == {'fp32'} and res['device'] == 'cpu'
    assert set(fp32['models']) == set(MODELS)
    for row in fp32['models'].values():
        assert row['step_ms'] > 0 and row['peak_mib'] is None
        assert row['images_per_s'] == pytest.approx(row['batch'] /
                                                    row['step_ms'] * 1e3)
    ratio = fp32['ratios']['ccop/mocov2']
    assert ratio == pytest.approx(fp32['models']['ccop']['step_ms'] /
                                  fp32['models']['mocov2']['step_ms'])


def test_check_gpu_needs_a_gpu_for_cuda(capsys, monkeypatch):
    check_gpu = _check_gpu()
    monkeypatch.setattr(check_gpu.torch.cuda, 'is_available', lambda: False)
    assert check_gpu.main(['--device', 'cuda']) == 1
    assert 'torch sees no GPU' in capsys.readouterr().err
