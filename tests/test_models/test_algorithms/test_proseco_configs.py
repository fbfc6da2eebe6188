"""The ProSeCo/DETReg R-50 configs (fidelity audit, docs/fidelity.md) and
the two-stage path (object-level backbone -> extract -> ProSeCo)."""
import os.path as osp
import runpy

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmregion.registry import MODELS
from mmregion.utils import register_all_modules

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SWAV = 'https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar'


def _cfg(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'mmregion', name))


def _types(items):
    return [c['type'] for c in items]


def test_proseco_r50_defaults():
    model = _cfg('proseco_deformable-detr_r50_coco.py').model
    bb = model.detector.backbone
    assert bb.frozen_stages == 4
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=SWAV)
    # item 10: L_coord + L_giou only, no class cost
    assert model.detector.bbox_head.loss_cls.loss_weight == 0.0
    assert _types(model.detector.train_cfg.assigner.match_costs) == [
        'mmdet.BBoxL1Cost', 'mmdet.IoUCost'
    ]
    # items 8, 9 and the per-GPU negatives
    assert model.head.type == 'ProSeCoHead'
    loss = model.head.loss
    assert (loss.normalize_target, loss.anchor,
            loss.gather_negatives) == (False, 'teacher', False)
    # item 11: every stored box loaded, K drawn per iteration
    pipe = {
        t['type']: t
        for t in _cfg('proseco_deformable-detr_r50_coco.py').train_pipeline
    }
    assert pipe['LoadProposals']['topk'] is None
    assert pipe['MultiViewRegions']['max_regions'] == 30


def test_detreg_r50_defaults():
    cfg = _cfg('detreg_deformable-detr_r50_coco.py')
    model = cfg.model
    assert model.detector.backbone.init_cfg.checkpoint == SWAV
    assert model.head.type == 'DETRegHead'
    assert model.detector.bbox_head.loss_cls.loss_weight == 2.0
    assert _types(model.detector.train_cfg.assigner.match_costs) == [
        'mmdet.FocalLossCost', 'mmdet.BBoxL1Cost', 'mmdet.IoUCost'
    ]
    # DETReg matches once: the embedding loss uses the localisation's costs
    assert model.head.assigner == model.detector.train_cfg.assigner
    assert model.neck.num_layers == 2  # MLP(256, 256, 512, 2)
    assert model.head.loss.reduction == 'mean'
    # issue 24 item 5: DETReg's patches (original image, PIL resize,
    # per-crop colour augmentation) on one uncoloured view
    assert (model.num_views, model.student_view,
            model.head.target) == (1, 0, 'patch')
    pipe = cfg.train_dataloader.dataset.pipeline
    assert _types(pipe) == [
        'LoadImageFromFileSafe', 'LoadProposals', 'KeepSourceRegions',
        'RegionRandomResizedCrop', 'RegionRandomFlip', 'MultiViewRegions',
        'BoxPatches', 'PackRegionInputs'
    ]
    assert pipe[5]['num_views'] == 1 and pipe[5]['max_regions'] == 30
    assert pipe[6]['size'] == 128
    assert _types(pipe[6]['transforms']) == [
        'mmpretrain.RandomApply', 'mmpretrain.RandomGrayscale',
        'mmpretrain.GaussianBlur'
    ]


@pytest.mark.parametrize('method', ['ccop', 'plrc'])
def test_object_level_backbone_configs(method):
    cfg = _cfg(f'proseco_deformable-detr_r50_{method}-backbone_coco.py')
    init = cfg.model.detector.backbone.init_cfg
    assert init == dict(
        type='Pretrained',
        checkpoint=f'checkpoints/{method}_r50_coco_backbone.pth')
    assert cfg.model.head.loss.type == 'LocSCELoss'


@pytest.mark.parametrize('name', [
    'proseco_deformable-detr_r50_ccop-backbone_coco.py',
    'detreg_deformable-detr_r50_coco.py'
])
def test_r50_configs_build(name):
    register_all_modules()
    model = MODELS.build(_cfg(name).model)  # no init_weights: no download
    assert not any(p.requires_grad
                   for p in model.detector.backbone.parameters())
    if name.startswith('detreg'):
        assert len([
            m for m in model.neck.modules() if isinstance(m, torch.nn.Linear)
        ]) == 2


def test_random_k_boxes_are_seeded():
    """Item 11: MultiViewRegions(max_regions=K) draws K of the stored boxes
    anew per call, reproducibly under the seed."""
    from mmregion.registry import TRANSFORMS
    register_all_modules()
    t = TRANSFORMS.build(
        dict(
            type='MultiViewRegions',
            transforms=[[], []],
            num_views=2,
            min_regions=0,
            max_regions=5))
    xy = np.arange(40, dtype=np.float32)[:, None].repeat(2, 1)
    base = dict(
        img=np.zeros((64, 64, 3), np.uint8),
        proposals=np.concatenate([xy, xy + 4], 1),
        region_ids=np.arange(40, dtype=np.int64),
        view_affine=np.array([1, 0, 1, 0], np.float32))

    def draw(seed):
        np.random.seed(seed)
        return t(dict(base))['region_ids'].tolist()

    assert draw(0) == draw(0) and len(draw(0)) == 5
    assert draw(0) != draw(1)


def test_toy_two_stage_path(tmp_path):
    """CCOP-like checkpoint -> tools/extract_backbone.py -> ProSeCo (toy
    sizes) with that frozen backbone: the weights arrive and it trains."""
    from mmengine.runner.checkpoint import save_checkpoint
    from mmpretrain.models import ResNet as PretrainResNet
    from test_proseco import _batch
    register_all_modules()
    torch.manual_seed(3)
    online = PretrainResNet(depth=18, out_indices=(3, ))
    online.init_weights()
    with torch.no_grad():  # distinct from any fresh init, still well scaled
        for p in online.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    ckpt = tmp_path / 'ccop.pth'
    save_checkpoint(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in online.state_dict().items()
        }), str(ckpt))
    out = tmp_path / 'ccop_backbone.pth'
    extract = runpy.run_path(osp.join(REPO, 'tools', 'extract_backbone.py'))
    extract['extract_backbone'](str(ckpt), str(out))

    cfg = _cfg('proseco_deformable-detr_r18_toy.py')
    cfg.model.detector.backbone.update(
        frozen_stages=4,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=False),
        init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    got = model.detector.backbone.state_dict()
    for k, v in online.state_dict().items():
        torch.testing.assert_close(got[k], v, msg=k)
    model.train()
    inputs, samples = _batch((3, 2))
    losses = model(inputs, samples, mode='loss')
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.detector.backbone.parameters())
    assert model.neck.layers[0].weight.grad.abs().sum() > 0
