import glob
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(REPO, 'configs', 'benchmarks')
ALL_CONFIGS = sorted(glob.glob(osp.join(BENCH, '*.py')))


@pytest.fixture(scope='module')
def det_scope():
    from mmdet.utils import register_all_modules

    import mmregion  # noqa: F401
    register_all_modules(init_default_scope=True)


def _load(name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(BENCH, name))


def test_every_config_parses_and_follows_the_conventions():
    assert len(ALL_CONFIGS) >= 9
    for path in ALL_CONFIGS:
        with open(path) as f:
            text = f.read()
        assert "_base_ = 'mmdet::" in text or "_base_ = './" in text, path
        cfg = _load(osp.basename(path))
        assert cfg.custom_imports == dict(
            imports=['mmregion'], allow_failed_imports=False), path
        assert cfg.pretrain_init in ('backbone', 'load_from'), path
        # every config is evaluated with COCO-style AP
        assert cfg.val_evaluator.type == 'CocoMetric', path


def test_mask_rcnn_protocol():
    for name, epochs in (('mask-rcnn_r50_fpn_ms-1x_coco.py', 12),
                         ('mask-rcnn_r50_fpn_ms-2x_coco.py', 24)):
        cfg = _load(name)
        m = cfg.model
        assert m.backbone.frozen_stages == -1
        assert m.backbone.norm_eval is False
        for norm in (m.backbone.norm_cfg, m.neck.norm_cfg,
                     m.roi_head.bbox_head.norm_cfg,
                     m.roi_head.mask_head.norm_cfg):
            assert norm.type == 'SyncBN'
        assert m.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
        resize = [
            t for t in cfg.train_dataloader.dataset.pipeline
            if t.type == 'RandomChoiceResize'
        ][0]
        assert sorted(s[1] for s in resize.scales) == list(range(640, 801, 32))
        assert cfg.train_cfg.max_epochs == epochs
        assert m.backbone.init_cfg.type == 'Pretrained'


def test_deformable_detr_protocol():
    full = _load('deformable-detr_r50_50e_coco.py')
    assert full.model.num_queries == 300
    assert full.optim_wrapper.optimizer.lr == 2e-4
    assert full.optim_wrapper.clip_grad.max_norm == 0.1
    assert full.train_cfg.max_epochs == 50
    # DETReg low-data: 1/5/10 % = 2000/500/400 epochs at a constant lr
    # (DETReg PR #40), batch 8 x 3 = 24
    for pct, epochs in ((1, 2000), (5, 500), (10, 400)):
        cfg = _load(f'deformable-detr_r50_mini-coco-{pct}pct.py')
        assert cfg.train_dataloader.dataset.ann_file.endswith(
            f'instances_train2017_{pct}pct_seed0.json')
        assert cfg.train_cfg.max_epochs == epochs
        assert [s.type for s in cfg.param_scheduler] == ['ConstantLR']
        assert cfg.train_dataloader.batch_size == 3
        assert cfg.val_dataloader.dataset.ann_file.endswith(
            'instances_val2017.json')
    voc = _load('deformable-detr_r50_voc0712.py')
    assert voc.model.bbox_head.num_classes == 20
    assert len(voc.val_dataloader.dataset.metainfo['classes']) == 20
    assert voc.val_evaluator.ann_file.endswith('voc07_test.json')
    # DETReg README: VOC 100 epochs, drop at 70; 10 %: 200 / 150, batch 8
    for cfg, epochs, drop in ((voc, 100, 70),
                              (_load('deformable-detr_r50_mini-voc-10pct.py'),
                               200, 150),
                              (_load('deformable-detr_r50_mini-voc-5pct.py'),
                               200, 150)):
        assert cfg.train_cfg.max_epochs == epochs
        assert cfg.param_scheduler[0].milestones == [drop]
        assert cfg.model.bbox_head.num_classes == 20
    mini_voc = _load('deformable-detr_r50_mini-voc-5pct.py')
    assert mini_voc.train_dataloader.batch_size == 4
    assert mini_voc.train_dataloader.dataset.ann_file.endswith(
        'voc0712_trainval_5pct_seed0.json')


@pytest.mark.parametrize(
    'name', ['mask-rcnn_r18_fpn_toy.py', 'deformable-detr_r18_toy.py'])
def test_toy_models_build_and_run(name, det_scope, toy_coco):
    import torch
    from mmdet.registry import MODELS
    torch.manual_seed(0)  # deterministic init and input
    cfg = _load(name)
    cfg.model.backbone.init_cfg = None  # no checkpoint in unit tests
    model = MODELS.build(cfg.model)
    # DeformableDETR's level_embed is uninitialised memory until
    # init_weights(): without it the forward may see NaN
    model.init_weights()
    assert model.backbone.depth == 18
    head = model.roi_head.bbox_head if 'mask' in name else model.bbox_head
    assert head.num_classes == 4
    # one forward in loss mode on a fake batch
    from mmdet.structures import DetDataSample
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.structures import InstanceData
    model = revert_sync_batchnorm(model)
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(96, 128),
            pad_shape=(96, 128),
            ori_shape=(96, 128),
            scale_factor=(1., 1.),
            batch_input_shape=(96, 128)))
    gt = InstanceData(
        bboxes=torch.tensor([[10., 10., 60., 50.]]), labels=torch.tensor([2]))
    if 'mask' in name:
        import numpy as np
        from mmdet.structures.mask import BitmapMasks
        m = np.zeros((1, 96, 128), np.uint8)
        m[0, 10:50, 10:60] = 1
        gt.masks = BitmapMasks(m, 96, 128)
    sample.gt_instances = gt
    losses = model.loss(torch.rand(1, 3, 96, 128) * 2 - 1, [sample])
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert model.backbone.layer4[0].conv1.weight.grad is not None
