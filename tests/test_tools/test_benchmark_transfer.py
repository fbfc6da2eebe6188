"""tools/benchmark_transfer.py: plan, resume, schedule, report; the object
probe; and (slow) a reduced --quick run end to end."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from tool_utils import load_tool

from mmregion.apis.object_probe import knn_accuracy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    return load_tool('benchmark_transfer')


def test_plan_covers_protocol(capsys):
    bt = _tool()
    assert bt.main(['--quick', '--dry-run', '--seeds', '3']) == 0
    names = [
        ln.split('] ', 1)[1] for ln in capsys.readouterr().out.splitlines()
    ]
    for m in ('mocov2', 'ccop', 'plrc', 'detreg', 'proseco'):
        assert f'pretrain/{m}' in names and f'export/{m}' in names
        assert f'probe/{m}' in names
    assert 'probe/scratch' in names and 'data' in names
    assert {'proposals/ss', 'proposals/grid'} <= set(names)
    for seed in range(3):
        assert f'finetune/rcnn/scratch/seed{seed}' in names
        assert f'finetune/detr/proseco/seed{seed}' in names
    assert not any('finetune/rcnn/detreg' in n for n in names)
    # a track subset drops the other track's methods
    bt.main(['--quick', '--dry-run', '--tracks', 'rcnn'])
    assert 'detreg' not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bt.parse_args(['--tracks', 'yolo'])


def test_rescaled_schedule():
    bt = _tool()
    ccop = [
        dict(
            type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
        dict(
            type='CosineAnnealingLR',
            T_max=35,
            eta_min=0.,
            by_epoch=False,
            begin=5,
            end=40)
    ]
    out = bt.rescaled_schedule(ccop, 40, 400)
    assert out[0]['end'] == 5
    assert (out[1]['begin'], out[1]['end'], out[1]['T_max']) == (5, 400, 395)
    step = [
        dict(
            type='MultiStepLR',
            by_epoch=False,
            begin=0,
            end=40,
            milestones=[30],
            gamma=0.1)
    ]
    assert bt.rescaled_schedule(step, 40, 400)[0]['milestones'] == [300]
    epoch = [dict(type='MultiStepLR', by_epoch=True, milestones=[8, 11])]
    assert bt.rescaled_schedule(epoch, 40, 400) == epoch


def test_resume_skips_finished_stages(tmp_path):
    bt = _tool()
    args = bt.parse_args(['--quick', '--work-dir', str(tmp_path)])
    calls = []

    def make(name, fail=False):

        def fn():
            calls.append(name)
            if fail:
                raise RuntimeError('killed')
            return dict(value=len(calls))

        return bt.Stage(name, fn, 1.0)

    bench = bt.Benchmark(args)
    with pytest.raises(RuntimeError):
        bench.run([make('a'), make('b', fail=True)])
    assert osp.isfile(osp.join(str(tmp_path), 'stages', 'a.json'))
    bench = bt.Benchmark(args)
    bench.run([make('a'), make('b')])
    assert calls == ['a', 'b', 'b']  # 'a' was not redone
    assert bench.results['a']['value'] == 1
    # a finished stage of another budget is refused, not reused
    other = bt.parse_args(
        ['--quick', '--work-dir',
         str(tmp_path), '--finetune-iters', '7'])
    with pytest.raises(RuntimeError, match='budget'):
        bt.Benchmark(other).run([make('a')])


def _fake_results():
    res = {
        'probe/scratch': dict(knn_top1=20.0, num_bank=50, num_query=80),
        'probe/ccop': dict(knn_top1=35.0, num_bank=50, num_query=80)
    }
    for init, maps in (('scratch', (1.0, 2.0, 3.0)), ('ccop', (10.0, 11.0,
                                                               12.0))):
        for seed, m in enumerate(maps):
            curve = [
                dict(iter=5, bbox_mAP=m / 2, bbox_mAP_50=m, segm_mAP=m / 3),
                dict(iter=10, bbox_mAP=m, bbox_mAP_50=2 * m, segm_mAP=m / 2)
            ]
            res[f'finetune/rcnn/{init}/seed{seed}'] = dict(
                curve=curve, final=curve[-1])
    return res


def test_report_table_and_plot(tmp_path):
    bt = _tool()
    args = bt.parse_args(
        ['--quick', '--tracks', 'rcnn', '--methods', 'ccop', '--seeds', '3'])
    report = bt.summarise(_fake_results(), args, 12.0)
    rcnn = report['tracks']['rcnn']
    assert rcnn['scratch']['bbox_mAP'] == (2.0, 1.0)
    assert rcnn['ccop']['bbox_mAP'] == (11.0, 1.0)
    assert rcnn['ccop']['delta_vs_scratch'] == 9.0
    assert rcnn['ccop']['margin_in_std'] == 9.0
    assert [p['iter'] for p in rcnn['ccop']['curve']] == [5, 10]
    assert report['probe']['ccop']['knn_top1'] == 35.0
    json.dumps(report)  # JSON-able
    md = bt.to_markdown(report)
    assert '| ccop | 11.00 ± 1.00 |' in md
    assert '+9.00' in md and 'k-NN top-1' in md
    png = tmp_path / 'plot.png'
    bt.plot(report, str(png))
    assert png.read_bytes()[:4] == b'\x89PNG'


def test_read_eval_curve(tmp_path):
    bt = _tool()
    run = tmp_path / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    # as mmengine writes them: validation of an iteration loop at step 0
    lines = [
        dict(iter=5, step=5, loss=1.0),
        dict(step=0, **{
            'coco/bbox_mAP': 0.1,
            'coco/segm_mAP': 0.05
        }),
        dict(iter=10, step=10, loss=0.5),
        dict(step=0, **{'coco/bbox_mAP': 0.2})
    ]
    (run / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) +
                                      '\n{broken\n')
    curve = bt.read_eval_curve(str(tmp_path))
    assert curve == [
        dict(iter=5, bbox_mAP=10.0, segm_mAP=5.0),
        dict(iter=10, bbox_mAP=20.0)
    ]


def test_knn_accuracy():
    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    labels = torch.arange(4).repeat(10)
    bank = torch.nn.functional.normalize(
        centres[labels] + 0.05 * torch.randn(40, 16), dim=1)
    query = torch.nn.functional.normalize(
        centres[labels] + 0.05 * torch.randn(40, 16), dim=1)
    assert knn_accuracy(bank, labels, query, labels, k=5) == 100.0
    shuffled = labels[torch.randperm(40)]
    assert knn_accuracy(bank, shuffled, query, labels, k=5) < 60.0
    with pytest.raises(ValueError, match='empty'):
        knn_accuracy(bank[:0], labels[:0], query, labels)


@pytest.mark.slow
def test_reduced_quick_run_end_to_end(tmp_path):
    """The whole R-CNN path (data -> proposals -> pre-train -> export ->
    probe -> fine-tune x 2 seeds -> table + plot) at a tiny budget; the
    numbers mean nothing, the table must be there and well-formed."""
    out = tmp_path / 'out'
    cmd = [
        sys.executable, 'tools/benchmark_transfer.py', '--quick', '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), '--tracks', 'rcnn', '--methods', 'ccop', '--num-train', '16',
        '--num-val', '4', '--labeled-frac', '0.5', '--pretrain-iters', '2',
        '--batch', '4', '--finetune-iters', '2', '--eval-points', '1',
        '--proposal-workers', '1'
    ]
    env = dict(__import__('os').environ, PYTHONPATH=ROOT)
    run = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    report = json.loads((out / 'transfer_quick.json').read_text())
    rcnn = report['tracks']['rcnn']
    assert set(rcnn) == {'scratch', 'ccop'}
    for entry in rcnn.values():
        assert entry['seeds'] == 2 and len(entry['bbox_mAP']) == 2
        assert 0 <= entry['bbox_mAP'][0] <= 100
    assert set(report['probe']) == {'scratch', 'ccop'}
    assert report['commit'] and report['settings']['pretrain_iters'] == 2
    md = (out / 'transfer_quick.md').read_text()
    assert '| scratch |' in md and '| ccop |' in md
    assert (out / 'transfer_quick.png').read_bytes()[:4] == b'\x89PNG'
    # a second run finds every stage done and only rebuilds the table
    again = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0
    assert 'pretrain/ccop: done earlier (skipped)' in again.stdout


@pytest.mark.parametrize('method', ['mocov2', 'ccop', 'plrc', 'detreg'])
def test_generated_pretrain_configs_build(method, tmp_path):
    """The per-method overrides merge into the public configs (a config
    change there, e.g. PLRC's img_neck=None or the R-50 DETReg pretrained
    init, once broke the generated config) and the models build."""
    from mmengine.config import Config

    from mmregion.registry import MODELS
    from mmregion.utils import register_all_modules
    bt = _tool()
    config = osp.join(ROOT, bt.METHODS[method][1])
    cfg = Config.fromfile(config)
    lines = [f'_base_ = {config!r}']
    lines += bt.Benchmark._method_overrides(method, cfg)
    derived = tmp_path / f'{method}_benchmark.py'
    derived.write_text('\n'.join(lines) + '\n')
    out = Config.fromfile(str(derived))
    register_all_modules()
    model = MODELS.build(out.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    if method == 'plrc':  # full-width ResNet-18 like every other method
        assert out.model.backbone.base_channels == 64
    if method == 'detreg':
        det = out.model.detector
        assert det.bbox_head.loss_cls.loss_weight == 2.0
        assert det.backbone.depth == 18 and not det.backbone.get('init_cfg')
        assert out.model.contrast_loss is None
        assert out.model.embed_head.out_channels == 128
