"""Smoke tests of every script in ``benchmarks/``: each runs as a user would
(its ``main`` with the tiny arguments ``performance_table.py --tiny`` uses:
one round, tiny sizes), so a change that breaks a script fails here.

Timings are never asserted (speed targets are measured by the scripts);
what is asserted is the result's shape: every model timed, every ratio
positive and finite, the table written from the results.
"""
import glob
import importlib.util
import json
import math
import os.path as osp
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(REPO, 'benchmarks')


def _load(name):
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(
        f'bench_{name}', osp.join(BENCH, f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


table = _load('performance_table')


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The scripts set torch's thread count; give the session its own back.
    """
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    """Filled by the script tests; the table test writes a table of them."""
    return {}


def _run(name, tmp_path, extra=()):
    script, _, tiny = table.SETTINGS[name]
    out = tmp_path / f'{name}.json'
    res = _load(script[:-3]).main(
        [*tiny, '--threads', '1', '--json',
         str(out), *extra])
    with open(out) as f:
        written = json.load(f)
    assert written['name'] == res['name'] == name
    assert written['machine']['commit']
    return res


def _check_ratios(res, methods):
    assert set(res['ratios']) >= set(methods)
    for m in methods:
        r = res['ratios'][m]
        assert len(r['rounds']) == res['rounds'] == 1
        assert math.isfinite(r['median']) and r['median'] > 0
    for model, times in res['times_ms'].items():
        assert len(times) == 2 * res['rounds'], model  # ABBA: twice a round


def test_every_script_has_a_smoke_test():
    scripts = {
        osp.basename(p)
        for p in glob.glob(osp.join(BENCH, '*.py'))
        if osp.basename(p) not in ('bench_utils.py', 'performance_table.py')
    }
    tested = {s for s, _, _ in table.SETTINGS.values()}
    assert scripts - tested == {'proposal_box_sizes.py'}  # tested below


def test_ccop(tmp_path, results):
    res = _run('ccop', tmp_path, ['--phases'])
    _check_ratios(res, ['ccop'])
    # the profile names the phases of any model (module hooks)
    ph = res['phases']['ccop']
    assert 'backbone' in ph and 'backward' in ph
    assert ph['total'] >= ph['backward']
    results['ccop'] = res


def test_plrc(tmp_path, results):
    res = _run('plrc', tmp_path)
    _check_ratios(res, ['plrc'])
    assert res['sizes']['views'] == 3  # the toy config keeps 3 views
    sweep = res['extra']['point_loss_sweep']
    assert list(sweep) == ['4'] and sweep['4']['ms'] > 0
    results['plrc'] = res


def test_proseco(tmp_path, results):
    # DETReg (an R50 config: ~10 s more) is smoke-tested by the slow test
    res = _run('proseco', tmp_path, ['--detreg-config', 'none'])
    _check_ratios(res, ['proseco'])
    assert 'detreg' not in res['median_ms']
    assert 0 < res['extra']['locsce_share_of_proseco_step'] < 10
    results['proseco'] = res


@pytest.mark.slow
def test_proseco_and_detreg(tmp_path):
    res = _run('proseco', tmp_path)
    _check_ratios(res, ['proseco', 'detreg'])


def test_proposals(tmp_path, results, toy_coco):
    res = _run('proposals', tmp_path, ['--no-memory', str(toy_coco)])
    _check_ratios(res, ['ours_w1', 'ours_w2'])
    assert res['sizes']['num_images'] == 3
    assert 0 <= res['extra']['recall_iou05'] <= 1
    assert res['ratios']['speedup_w2_vs_w1']['median'] > 0
    results['proposals'] = res


def test_region_pipeline(tmp_path, results):
    res = _run('region_pipeline', tmp_path)
    assert set(res['comparisons']) == {'geometry', 'full', 'stack_regions'}
    for r in res['comparisons'].values():
        _check_ratios(r, list(r['ratios']))
    results['region_pipeline'] = res


def test_proposal_box_sizes(toy_proposals, capsys):
    _load('proposal_box_sizes').main([str(toy_proposals)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('| store | boxes | mean |')
    shares = [float(c.strip()[:-1]) for c in out[2].split('|')[4:-1]]
    assert abs(sum(shares) - 100) < 0.5  # every box in one bin


def test_table_of_the_results(results):
    if len(results) < len(table.SETTINGS):
        pytest.skip('needs the script tests of this module (run the file)')
    doc = dict(
        command='python benchmarks/performance_table.py --tiny',
        tiny=True,
        threads=1,
        uptime_before='load average: 1.00, 1.00, 1.00',
        uptime_after='load average: 1.00, 1.00, 1.00',
        wall_s=1.,
        results={
            n: dict(r, command=f'python benchmarks/{n}.py', wall_s=1.)
            for n, r in results.items()
        },
        machine=table.bu.machine())
    md = table.markdown(doc)
    for comp in ('ccop / mocov2', 'plrc / mocov2', 'proseco / supervised',
                 'ours_w1 / opencv', '2 workers vs 1',
                 'geometry: ours / mmpretrain',
                 'stack_regions: stack_regions / pad_sequence'):
        assert comp in md, comp
    assert 'TINY smoke sizes' in md
    # the phase profile became a column and a per-benchmark table
    assert '| phase (ms, one step) | mocov2 | ccop |' in md


@pytest.mark.slow
def test_ccop_peak_memory_in_fresh_processes(tmp_path):
    """The memory runs (one subprocess per model) report both models."""
    script, _, tiny = table.SETTINGS['ccop']
    argv = [a for a in tiny if a != '--no-memory']
    res = _load(script[:-3]).main([*argv, '--threads', '1'])
    assert set(res['memory']) == {'mocov2', 'ccop'}
    for m in res['memory'].values():
        assert m['peak_mib'] > 0
