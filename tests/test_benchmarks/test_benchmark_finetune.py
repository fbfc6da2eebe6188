import copy
import glob
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(REPO, 'configs', 'benchmarks')


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bf = _load_tool('benchmark_finetune')


def _write_scalars(work_dir, ts, records):
    d = osp.join(work_dir, ts, 'vis_data')
    os.makedirs(d, exist_ok=True)
    with open(osp.join(d, 'scalars.json'), 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def test_parse_final_metrics_takes_the_last_eval_of_the_latest_run(tmp_path):
    wd = str(tmp_path / 'w')
    _write_scalars(wd, '20260101_000000', [{'coco/bbox_mAP': 0.9}])
    _write_scalars(wd, '20260102_000000', [
        {
            'loss': 1.0,
            'step': 1
        },
        {
            'coco/bbox_mAP': 0.1,
            'coco/bbox_mAP_50': 0.2,
            'step': 1
        },
        {
            'loss': 0.5,
            'step': 2
        },
        {
            'coco/bbox_mAP': 0.301,
            'coco/bbox_mAP_50': 0.5,
            'coco/bbox_mAP_75': 0.32,
            'coco/segm_mAP': 0.27,
            'coco/segm_mAP_50': 0.45,
            'coco/segm_mAP_75': 0.28,
            'step': 2
        },
    ])
    m = bf.parse_final_metrics(wd)
    assert m == dict(
        bbox_AP=30.1,
        bbox_AP50=50.0,
        bbox_AP75=32.0,
        segm_AP=27.0,
        segm_AP50=45.0,
        segm_AP75=28.0)
    assert bf.parse_final_metrics(str(tmp_path / 'nothing')) == {}
    # VOC metric names
    _write_scalars(
        str(tmp_path / 'v'), 't', [{
            'pascal_voc/mAP': 0.8,
            'pascal_voc/AP50': 0.8
        }])
    assert bf.parse_final_metrics(str(tmp_path / 'v'))['bbox_AP50'] == 80.0


def test_tables():
    md, csv_text = bf.format_tables([
        dict(method='ccop', benchmark='b', status='ok', bbox_AP=40.04),
        dict(method='plrc', benchmark='b', status='failed (exit 1)'),
    ])
    lines = md.strip().splitlines()
    assert lines[0].startswith('| method | benchmark | bbox_AP')
    assert '| ccop | b | 40.0 | - |' in lines[2]
    assert csv_text.splitlines()[1].startswith('ccop,b,40.04,')
    assert 'failed (exit 1)' in csv_text


def test_dry_run_prints_the_commands(tmp_path, capsys):
    rc = bf.main([
        '--ckpt', 'ccop=a.pth', 'sup=none', '--config',
        osp.join(BENCH, 'mask-rcnn_r18_fpn_toy.py'),
        osp.join(BENCH, 'deformable-detr_r18_toy.py'), '--work-dir',
        str(tmp_path), '--dry-run'
    ])
    assert rc == 0
    out = capsys.readouterr().out
    assert 'extract_backbone.py a.pth' in out
    assert "type='Pretrained'" in out and 'load_from = ' in out
    assert out.count('tools/train.py') == 4
    assert not glob.glob(str(tmp_path / '**' / '*.py'), recursive=True)
    assert bf.main(['--ckpt', 'bad', '--config', 'x.py']) == 2


def _fresh_pretrain_checkpoint(path):
    """A CCOP-like checkpoint with a fresh ResNet-18 (online + momentum)."""
    from mmengine.runner.checkpoint import save_checkpoint
    from mmpretrain.models import ResNet
    online, momentum = ResNet(depth=18), ResNet(depth=18)
    state = {f'backbone.{k}': v for k, v in online.state_dict().items()}
    state.update({
        f'momentum_encoder.module.0.{k}': torch.zeros_like(v)
        for k, v in momentum.state_dict().items()
    })
    save_checkpoint(dict(state_dict=state, meta=dict(epoch=1)), str(path))
    return online


def _log_text(work_dir):
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    assert logs, f'no log in {work_dir}'
    with open(logs[-1]) as f:
        return f.read()


def _toy_options(toy_coco):
    root = str(toy_coco) + '/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/instances_val.json',
        f'test_evaluator.ann_file={root}annotations/instances_val.json',
    ]


@pytest.mark.slow
def test_finetune_mask_rcnn_toy_from_extracted_backbone(toy_coco, tmp_path):
    """benchmark_finetune end to end: extract -> train.py -> table."""
    import mmregion  # noqa: F401
    ckpt = tmp_path / 'ccop.pth'
    online = _fresh_pretrain_checkpoint(ckpt)
    out = tmp_path / 'results'
    opts = _toy_options(toy_coco) + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2'
    ]
    rc = bf.main([
        '--ckpt', f'ccop={ckpt}', '--config',
        osp.join(BENCH, 'mask-rcnn_r18_fpn_toy.py'), '--work-dir',
        str(tmp_path / 'w'), '--out',
        str(out), '--cfg-options', *opts
    ])
    work_dir = str(tmp_path / 'w' / 'ccop' / 'mask-rcnn_r18_fpn_toy')
    assert rc == 0, _log_text(work_dir)[-3000:]
    # the extracted backbone is the online encoder's, and it was loaded
    # without missing/unexpected keys
    bb = torch.load(osp.join(work_dir, 'backbone.pth'), weights_only=True)
    assert set(bb['state_dict']) == set(online.state_dict())
    log = _log_text(work_dir)
    assert osp.join(work_dir, 'backbone.pth') in log
    assert 'missing keys' not in log and 'unexpected key' not in log
    # a bbox mAP number in the table
    with open(f'{out}.csv') as f:
        rows = f.read().splitlines()
    head, row = rows[0].split(','), rows[1].split(',')
    rec = dict(zip(head, row))
    assert rec['method'] == 'ccop' and rec['status'] == 'ok'
    assert 0.0 <= float(rec['bbox_AP']) <= 100.0
    assert rec['segm_AP'] != ''


@pytest.mark.slow
def test_finetune_deformable_detr_toy_load_from(toy_coco, tmp_path):
    """Deformable DETR initialised from a whole-detector checkpoint."""
    import numpy as np
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import save_checkpoint

    import mmregion  # noqa: F401

    register_all_modules()
    cfg = Config.fromfile(osp.join(BENCH, 'deformable-detr_r18_toy.py'))
    torch.manual_seed(1)
    detector = MODELS.build(copy.deepcopy(cfg.model))  # build edits it
    detector.init_weights()  # (level_embed is uninitialised memory before)
    ckpt = tmp_path / 'proseco_detector.pth'
    # numpy in meta: exercises mmregion's safe loader on load_from
    save_checkpoint(
        dict(
            state_dict=detector.state_dict(),
            meta=dict(epoch=1, seed=np.int64(3))), str(ckpt))

    cfg.merge_from_dict({
        k: v
        for k, v in (o.split('=', 1) for o in _toy_options(toy_coco))
    })
    cfg.load_from = str(ckpt)
    cfg.work_dir = str(tmp_path / 'w')
    cfg.randomness = dict(seed=0)
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = _log_text(cfg.work_dir)
    assert 'Load checkpoint from' in log
    assert 'missing keys' not in log and 'unexpected key' not in log
    metrics = bf.parse_final_metrics(cfg.work_dir)
    assert 0.0 <= metrics['bbox_AP'] <= 100.0
    assert 'segm_AP' not in metrics
