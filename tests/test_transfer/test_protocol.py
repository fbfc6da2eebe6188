"""The protocol files, the resumable runner, the gate's stop, the shared
pre-training conditions and the anchor coverage."""
import os.path as osp

import numpy as np
import pytest

from mmregion.apis.transfer import runner
from mmregion.apis.transfer.benchmark import TransferBenchmark

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = osp.join(ROOT, 'configs/protocols/transfer_toy_cpu.py')
COCO = osp.join(ROOT, 'configs/protocols/transfer_coco_gpu.py')


@pytest.mark.parametrize('path', [TOY, COCO])
def test_protocols_load_and_plan(path, tmp_path):
    proto = runner.load_protocol(path)
    names = [s.name for s in TransferBenchmark(proto, str(tmp_path)).plan()]
    # the gate's run and probes come before every other pre-training run
    gate = names.index('gate')
    first_other = min(
        i for i, n in enumerate(names)
        if n.startswith('pretrain/') and n != 'pretrain/mocov2/seed0')
    assert names.index('pretrain/mocov2/seed0') < gate < first_other
    assert len(proto['pretrain']['seeds']) >= 3
    assert len(proto['detection']['seeds']) >= 3
    assert set(proto['detection']['modes']) == {'frozen', 'finetune'}
    if path == TOY:  # no blur: the toy's classes are 4-8 px patterns
        assert proto['views']['blur'] is None
    else:  # the same blur for every method
        from mmregion.apis.transfer.pretrain import image_views, region_views
        for views in (image_views(proto['views']),
                      region_views(proto['views'])):
            assert [t['type'] for t in views].count('mmpretrain.'
                                                    'GaussianBlur') == 1
    assert any(n.startswith('detect/finetune/random/') for n in names)


def test_quick_merges_overrides():
    full = runner.load_protocol(TOY)
    quick = runner.load_protocol(TOY, quick=True)
    assert quick['mode'] == 'quick' and full['mode'] == 'full'
    assert quick['pretrain']['iters'] < full['pretrain']['iters']
    assert quick['pretrain']['variants'] == {}
    assert quick['pretrain']['methods'] == full['pretrain']['methods']
    assert quick['gate']['enforce'] is False
    assert runner.merge(dict(a=dict(b=1, c=2)),
                        dict(a=dict(b=3))) == dict(a=dict(b=3, c=2))


def test_run_stages_resumes_and_refuses_other_settings(tmp_path):
    proto = dict(pretrain=dict(iters=5), probe=dict(k=1))
    calls = []

    def make(name, fail=False):

        def fn():
            calls.append(name)
            if fail:
                raise RuntimeError('killed')
            return dict(value=len(calls))

        return runner.Stage(name, fn, ('pretrain.iters', ))

    res = {}
    with pytest.raises(RuntimeError, match='killed'):
        runner.run_stages([make('a'), make('b', True)],
                          proto,
                          str(tmp_path),
                          res,
                          log=lambda s: None)
    res = {}
    runner.run_stages([make('a'), make('b')],
                      proto,
                      str(tmp_path),
                      res,
                      log=lambda s: None)
    assert calls == ['a', 'b', 'b'] and res['a']['value'] == 1
    # another value of a key the stage depends on: refused, not reused
    proto2 = dict(pretrain=dict(iters=6), probe=dict(k=1))
    with pytest.raises(RuntimeError, match='other protocol settings'):
        runner.run_stages([make('a')],
                          proto2,
                          str(tmp_path), {},
                          log=lambda s: None)
    # a key it does not depend on changes nothing
    proto3 = dict(pretrain=dict(iters=5), probe=dict(k=2))
    runner.run_stages([make('a')],
                      proto3,
                      str(tmp_path), {},
                      log=lambda s: None)
    assert calls == ['a', 'b', 'b']


def test_failing_gate_stops_the_run(tmp_path, capsys, monkeypatch):
    """A gate that fails stops the tool with exit code 3 and one line; no
    stage after it runs."""
    from tool_utils import load_tool
    bt = load_tool('benchmark_transfer')
    ran = []
    n = 300
    fake = {
        'random': dict(linear=dict(acc=10.0, correct=[1] * 30 + [0] * 270)),
        'mocov2': dict(linear=dict(acc=11.0, correct=[1] * 33 + [0] * 267))
    }

    def fake_probe(self, run, seed, it):
        ran.append(('probe', run, seed, it))
        out = dict(fake[run if run == 'random' else 'mocov2'])
        out.update(
            knn=dict(acc=1.0, correct=[0] * n),
            num_boxes=dict(test=n),
            run=run,
            seed=seed,
            iter=it)
        return out

    def fake_stage(name):
        return lambda self, *a: ran.append((name, ) + a) or dict(
            checkpoints={}, store='x')

    monkeypatch.setattr(TransferBenchmark, 'stage_probe', fake_probe)
    for name in ('stage_data', 'stage_boxes', 'stage_pretrain', 'stage_detect',
                 'stage_anchors'):
        monkeypatch.setattr(TransferBenchmark, name, fake_stage(name))
    code = bt.main([
        TOY, '--work-dir',
        str(tmp_path / 'w'), '--out',
        str(tmp_path / 'out')
    ])
    assert code == 3
    err = capsys.readouterr().err
    stop = [ln for ln in err.splitlines() if ln.startswith('STOP:')]
    assert len(stop) == 1 and 'gate failed' in stop[0]
    assert [r for r in ran
            if r[0] == 'stage_pretrain'] == [('stage_pretrain', 'mocov2', 0)]
    assert not any(r[0] == 'stage_detect' for r in ran)
    # the partial report says why it stopped
    md = (tmp_path / 'out' / 'transfer_toy_cpu_full.md').read_text()
    assert 'gate failed' in md


def test_pretrain_configs_share_views_queues_and_width(tmp_path):
    from mmregion.apis.transfer.pretrain import pretrain_config
    proto = runner.load_protocol(TOY)
    cfgs = {
        m:
        pretrain_config(spec['config'], proto, str(tmp_path), 1,
                        None if spec['boxes'] is None else 'store')
        for m, spec in proto['pretrain']['methods'].items()
    }

    def views(cfg):
        t = [
            t for t in cfg.train_dataloader.dataset.pipeline
            if 'transforms' in t
        ][0]
        return t['transforms'][0]

    crops = {m: views(c)[0] for m, c in cfgs.items()}
    for m, crop in crops.items():
        assert crop['scale'] == 96
        assert tuple(crop['crop_ratio_range']) == (0.3, 1.0)
        types = [t['type'] for t in views(cfgs[m])]
        assert not any('Blur' in t for t in types), m
        # colour jitter, grey and flip identical (crop types differ only by
        # carrying boxes)
        assert views(cfgs[m])[1:3] == views(cfgs['mocov2'])[1:3]
    for m, cfg in cfgs.items():
        assert cfg.train_dataloader.batch_size == 16
        assert cfg.model.backbone.base_channels == 32
        assert cfg.optim_wrapper.optimizer.lr == proto['pretrain']['lr']
        assert cfg.randomness.seed == 1
    assert cfgs['mocov2'].model.queue_len == 1024
    assert cfgs['ccop'].model.img_queue_len == 1024
    assert cfgs['ccop'].model.region_queue_len == 4096
    assert cfgs['plrc'].model.img_queue_len == 1024
    assert cfgs['mocov2'].model.neck.in_channels == 256


def test_anchor_coverage_hand_cases():
    from mmregion.apis.transfer.detect import anchor_coverage
    gen = dict(
        type='AnchorGenerator', scales=[8], ratios=[1.0], strides=[4, 8])
    # anchors 32 / 64 px squares; a 32-px box on the grid matches exactly,
    # an 8-px box has IoU 1/16 with the best 32-px anchor
    boxes = np.array([[0, 0, 32, 32], [10, 10, 18, 18]], np.float32)
    assert anchor_coverage(boxes, 128, gen, 0.3) == pytest.approx(0.5)
    small = dict(gen, scales=[2])  # 8 / 16 px anchors
    assert anchor_coverage(boxes[1:], 128, small, 0.3) == pytest.approx(1.0)


def test_detection_config_anchors_fit_the_toy_objects(tmp_path):
    """The protocol's detector sees >= 98 % of the toy objects, mmdet's
    default anchors do not."""
    from mmengine.config import Config

    from mmregion.apis.transfer.detect import anchor_coverage, coco_boxes
    from mmregion.testing.toy_data_hard import make_hard_toy_coco
    proto = runner.load_protocol(TOY)
    paths = make_hard_toy_coco(str(tmp_path), num_train=40, num_val=2)
    boxes = coco_boxes(paths['train_ann'])
    cfg = Config.fromfile(osp.join(ROOT, proto['detection']['config']))
    gen = cfg.model.rpn_head.anchor_generator.to_dict()
    assert anchor_coverage(boxes, 128, gen) >= 0.98
    default = dict(gen, scales=[8], strides=[4, 8, 16, 32, 64])
    assert anchor_coverage(boxes, 128, default) < 0.95
