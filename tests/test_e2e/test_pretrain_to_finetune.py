"""Pre-train (tiny config) -> export -> fine-tune briefly -> evaluate.

The path a user takes, on the toy set on CPU, through the command-line tools:
CCOP -> tools/extract_backbone.py -> Mask R-CNN (backbone init_cfg), and
ProSeCo -> tools/convert_proseco_to_ddetr.py -> Deformable DETR (load_from).
Both assert that every pre-trained key was loaded.
"""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmregion.utils import load_checkpoint_safely

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _run(*args, timeout=600):
    out = subprocess.run([sys.executable, *args],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=timeout)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out.stdout + out.stderr


def _pretrain(config, work, toy_coco, toy_proposals, proposal_index):
    _run(
        'tools/train.py', config, '--work-dir', str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_coco}/',
        f'train_dataloader.dataset.pipeline.{proposal_index}.proposal_file='
        f'{toy_proposals}', 'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2')
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()
    return ckpt


def _finetune_options(toy_coco):
    root = f'{toy_coco}/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/instances_val.json',
        f'test_evaluator.ann_file={root}annotations/instances_val.json',
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4'
    ]


def _final_bbox_map(work):
    metrics = {}
    for path in sorted(
            glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))):
        for line in open(path):
            metrics.update(json.loads(line))
    assert 'coco/bbox_mAP' in metrics, metrics
    return metrics['coco/bbox_mAP']


def _proposal_index(config):
    from mmengine.config import Config
    pipeline = Config.fromfile(osp.join(ROOT, config)) \
        .train_dataloader.dataset.pipeline
    return next(i for i, t in enumerate(pipeline) if 'proposal_file' in t)


@pytest.mark.slow
def test_ccop_to_mask_rcnn(toy_coco, toy_proposals, tmp_path):
    config = 'configs/mmregion/ccop_r18_toy.py'
    ckpt = _pretrain(config, tmp_path / 'pre', toy_coco, toy_proposals,
                     _proposal_index(config))
    backbone = tmp_path / 'backbone.pth'
    _run('tools/extract_backbone.py', str(ckpt), str(backbone))

    pre = load_checkpoint_safely(str(ckpt))['state_dict']
    out = load_checkpoint_safely(str(backbone))['state_dict']
    online = {
        k[len('backbone.'):]: v
        for k, v in pre.items() if k.startswith('backbone.')
    }
    assert out.keys() == online.keys()
    assert all(torch.equal(out[k], online[k]) for k in out)

    work = tmp_path / 'ft'
    log = _run('tools/train.py', 'configs/benchmarks/mask-rcnn_r18_fpn_toy.py',
               '--work-dir', str(work), '--cfg-options',
               f'model.backbone.init_cfg.checkpoint={backbone}',
               *_finetune_options(toy_coco))
    # mmengine logs the init of every backbone parameter: all from the file,
    # and load_state_dict reported no missing/unexpected key
    assert f'load model from: {backbone}' in log
    assert 'Loads checkpoint by local_safely backend' in log
    assert 'missing keys in source state_dict' not in log
    assert 'unexpected key in source state_dict' not in log
    assert 0.0 <= _final_bbox_map(work) <= 1.0


@pytest.mark.slow
def test_proseco_to_deformable_detr(toy_coco, toy_proposals, tmp_path):
    config = 'configs/mmregion/proseco_deformable-detr_r18_toy.py'
    ft_config = 'configs/benchmarks/deformable-detr_r18_toy.py'
    ckpt = _pretrain(config, tmp_path / 'pre', toy_coco, toy_proposals,
                     _proposal_index(config))
    det = tmp_path / 'ddetr.pth'
    report = _run('tools/convert_proseco_to_ddetr.py', str(ckpt), str(det),
                  '--config', ft_config)
    converted = load_checkpoint_safely(str(det))['state_dict']
    assert any(k.startswith('backbone.') for k in converted)
    assert not any('teacher' in k for k in converted)

    work = tmp_path / 'ft'
    log = _run('tools/train.py', ft_config, '--work-dir',
               str(work), '--cfg-options', f'load_from={det}',
               *_finetune_options(toy_coco))
    assert f'Load checkpoint from {det}' in log
    # only the new classification branch (4 toy classes vs. 1
    # class-agnostic) may be missing
    for line in log.splitlines():
        if line.startswith('missing keys in source state_dict:'):
            missing = line.split(':', 1)[1].split(',')
            assert all('cls_branches' in k for k in missing), line
    assert 'unexpected key in source state_dict' not in log
    assert 0.0 <= _final_bbox_map(work) <= 1.0
    assert 'kept' in report
