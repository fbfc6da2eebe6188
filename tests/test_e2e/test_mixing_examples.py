"""The README's mixing examples, trained through the *foreign* train.py.

Each ```python block of docs/mixing.md ("Mixing mmregion into mmdet /
mmpretrain configs") is written to a file exactly as printed and trained for a
couple of iterations by the installed library's own
``<mmdet|mmpretrain>/.mim/tools/train.py``, on the toy set. Only sizes and
data paths are changed, through ``--cfg-options`` (as a user would).
"""
import os
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

pytestmark = pytest.mark.slow


def _blocks():
    section = open(osp.join(ROOT, 'docs', 'mixing.md')).read()
    return re.findall(r'```python\n(.*?)```', section, flags=re.S)


def _train(library: str, config: Path, work: Path, options) -> str:
    """Run ``library``'s own tools/train.py; return its log (stdout+err)."""
    lib = __import__(library)
    script = osp.join(osp.dirname(lib.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(script), script
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    out = subprocess.run(
        [
            sys.executable, script,
            str(config), '--work-dir',
            str(work / 'run'), '--cfg-options'
        ] + options,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    return log


def _link_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        os.symlink(item, dst / item.name)


def _losses(log: str):
    values = [float(v) for v in re.findall(r'\bloss: ([-\d.e]+|nan|inf)', log)]
    assert values, log[-3000:]
    return values


def test_mixing_page_has_three_examples():
    blocks = _blocks()
    assert len(blocks) == 3
    assert "'mmdet::" in blocks[0] and "'mmpretrain::" in blocks[1]
    assert "type='mmregion.CCOP'" in blocks[2]


def test_example1_mmdet_mask_rcnn_from_an_mmregion_backbone(
        tmp_path, toy_coco):
    import torch
    from mmdet.models.backbones import ResNet
    block = _blocks()[0]
    ckpt = re.search(r"checkpoint='([^']+)'", block).group(1)
    # stands in for tools/extract_backbone.py's output (backbone keys only)
    torch.save({'state_dict': ResNet(depth=50).state_dict()}, tmp_path / ckpt)
    _link_tree(toy_coco, tmp_path / 'data' / 'coco')
    cfg = tmp_path / 'example1.py'
    cfg.write_text(block)
    ds = 'train_dataloader.dataset.dataset'
    log = _train(
        'mmdet',
        cfg,
        tmp_path,
        [
            f'{ds}.ann_file=annotations/instances_train.json',
            f'{ds}.data_prefix.img=train/',
            f'{ds}.metainfo.classes=[ellipse,rectangle,triangle,star]',
            f'{ds}.pipeline.2.scale=[(160,128),(160,128)]',
            f'{ds}.indices=4',  # 4 images, 2 iterations of 2
            'train_dataloader.dataset.times=1',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'train_cfg.max_epochs=1',
            # CPU-sized RoI heads (mmdet: 2000 / 1000 proposals, 512 RoIs)
            'model.train_cfg.rpn_proposal.nms_pre=200',
            'model.train_cfg.rpn_proposal.max_per_img=100',
            'model.train_cfg.rcnn.sampler.num=32',
            'val_cfg=None',
            'val_dataloader=None',
            'val_evaluator=None',
            'default_hooks.logger.interval=1'
        ])
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    assert ckpt in log  # the Pretrained init_cfg loaded it ...
    assert 'do not match exactly' not in log  # ... with no key missing
    assert all(v == v and abs(v) < 1e6 for v in _losses(log))
    assert (tmp_path / 'run' / 'epoch_1.pth').is_file()


def _imagenet_like(tmp_path: Path, toy_coco: Path,
                   toy_proposals: Path) -> None:
    """data/imagenet/{*.jpg, meta/train.txt}; the README's proposal path."""
    root = tmp_path / 'data' / 'imagenet'
    (root / 'meta').mkdir(parents=True)
    names = sorted(p.name for p in (toy_coco / 'train').glob('*.jpg'))
    for name in names:
        os.symlink(toy_coco / 'train' / name, root / name)
    (root / 'meta' / 'train.txt').write_text(''.join(f'{n} 0\n'
                                                     for n in names))
    (tmp_path / 'data' / 'coco' / 'proposals').mkdir(parents=True)
    os.symlink(toy_proposals,
               tmp_path / 'data' / 'coco' / 'proposals' / 'train2017')


# images directly under data_root: their key is the same whether the
# proposal store is read by file name or by path relative to the data root
MMPRETRAIN_OPTIONS = [
    'train_dataloader.dataset.data_prefix.img_path=',
    'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
    'default_hooks.logger.interval=1', 'model.backbone.depth=18'
]


def test_example2_mmpretrain_mocov2_on_region_views(tmp_path, toy_coco,
                                                    toy_proposals):
    _imagenet_like(tmp_path, toy_coco, toy_proposals)
    cfg = tmp_path / 'mocov2_resnet50_in1k_region-views.py'
    cfg.write_text(_blocks()[1])
    log = _train('mmpretrain', cfg, tmp_path,
                 MMPRETRAIN_OPTIONS + ['model.neck.in_channels=512'])
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    assert all(v == v and abs(v) < 1e6 for v in _losses(log))
    assert (tmp_path / 'run' / 'epoch_1.pth').is_file()


def test_example3_mmregion_ccop_in_an_mmpretrain_config(
        tmp_path, toy_coco, toy_proposals):
    _imagenet_like(tmp_path, toy_coco, toy_proposals)
    blocks = _blocks()
    base = re.search(r"_base_ = '\./([^']+)'", blocks[2]).group(1)
    (tmp_path / base).write_text(blocks[1])
    cfg = tmp_path / 'ccop_resnet50_in1k_region-views.py'
    cfg.write_text(blocks[2])
    log = _train(
        'mmpretrain', cfg, tmp_path, MMPRETRAIN_OPTIONS + [
            'model.neck.in_channels=[64,128,256,512]',
            'model.neck.out_channels=32', 'model.region_neck.in_channels=32',
            'model.img_neck.in_channels=512'
        ])
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    for key in ('loss_img', 'loss_region', 'loss_intra'):
        assert re.search(rf'\b{key}: [-\d.]+', log), key
    assert (tmp_path / 'run' / 'epoch_1.pth').is_file()
