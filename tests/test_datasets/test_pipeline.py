"""The whole region pipeline from configs (docs/design.md sec. 2)."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmregion.models.utils import stack_regions
from mmregion.registry import MODELS, TRANSFORMS

pytest.importorskip('mmpretrain')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_CFG = osp.join(REPO, 'configs/_base_/datasets/toy_regions_2view.py')
COCO_CFG = osp.join(REPO, 'configs/_base_/datasets/coco_regions_2view.py')


def _set_proposal_file(pipeline, proposal_file):
    for t in pipeline:
        if t['type'] == 'LoadProposals':
            t['proposal_file'] = proposal_file
    return pipeline


def _check_batch(cfg, batch, batch_size, size):
    from mmpretrain.structures import DataSample
    inputs, samples = batch['inputs'], batch['data_samples']
    assert len(inputs) == 2  # views
    for x in inputs:
        assert x.shape == (batch_size, 3, size,
                           size) and x.dtype == torch.uint8
    assert len(samples) == batch_size
    for s in samples:
        assert isinstance(s, DataSample)
        k = len(s.region_ids)
        assert s.boxes.shape == (2, k, 4) and s.boxes.dtype == torch.float32
        assert s.region_ids.dtype == torch.long
        assert s.view_affine.shape == (2, 4)
        assert s.img_shape == [(size, size)] * 2
        assert {'img_path', 'img_id', 'ori_shape'} <= set(s.metainfo)
        assert (s.boxes >= 0).all() and (s.boxes <= size).all()

    pre = MODELS.build(cfg.data_preprocessor)
    data = pre(batch, training=True)
    assert len(data['inputs']) == 2
    for x in data['inputs']:
        assert x.shape == (batch_size, 3, size, size)
        assert x.dtype == torch.float32 and x.abs().max() < 5  # normalised
    boxes, valid = stack_regions(data['data_samples'], num_views=2)
    k_max = max(1, max(len(s.region_ids) for s in samples))
    assert boxes.shape == (batch_size, 2, k_max, 4)
    assert valid.shape == (batch_size, k_max)
    assert valid.sum() == sum(len(s.region_ids) for s in samples)


def test_toy_config_with_fake_store(tiny_coco, helpers, monkeypatch):
    from mmengine.runner import Runner

    import mmregion.proposals as proposals
    root, boxes = tiny_coco
    monkeypatch.setattr(proposals, 'load_proposal_store',
                        lambda path: helpers.FakeStore(boxes))
    cfg = Config.fromfile(TOY_CFG)
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.batch_size = 3
    loader_cfg.dataset.update(
        data_root=str(root),
        ann_file='ann.json',
        data_prefix=dict(img='images/'))
    with DefaultScope.overwrite_default_scope('mmregion'):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
        batch = next(iter(loader))
        _check_batch(cfg, batch, 3, 96)


def test_toy_config_with_real_proposals(toy_coco, toy_proposals):
    from mmengine.runner import Runner
    cfg = Config.fromfile(TOY_CFG)
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.dataset.data_root = str(toy_coco)
    _set_proposal_file(loader_cfg.dataset.pipeline, str(toy_proposals))
    with DefaultScope.overwrite_default_scope('mmregion'):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
        batch = next(iter(loader))
        _check_batch(cfg, batch, 4, 96)
    n_regions = sum(len(s.region_ids) for s in batch['data_samples'])
    assert n_regions >= 4  # real proposals survive the CCOP thresholds


def test_coco_config_pipeline_builds():
    cfg = Config.fromfile(COCO_CFG)
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_dataloader.drop_last
    assert cfg.train_dataloader.collate_fn.type == 'mmregion.region_collate'
    with DefaultScope.overwrite_default_scope('mmregion'):
        ts = [TRANSFORMS.build(t) for t in cfg.train_pipeline]
    mv = ts[2]
    assert type(mv).__name__ == 'MultiViewRegions' and mv.num_views == 2
    crop = mv.pipelines[0].transforms[0]
    assert crop.scale == (224, 224) and crop.min_kept_ratio == 0.6
    assert crop.min_area == 144 and crop.crop_ratio_range == (0.1, 1.0)
    names = [type(t).__name__ for t in mv.pipelines[0].transforms]
    assert names == [
        'RegionRandomResizedCrop', 'RandomApply', 'RandomGrayscale',
        'GaussianBlur', 'RegionRandomFlip'
    ]
    assert ts[1]._store is None  # the store is opened lazily


def test_mmpretrain_photometric_keep_region_keys(helpers):
    """mmpretrain's photometric transforms only touch ``img``."""
    # the one photometric block of the configs, always applied
    photometric = Config.fromfile(
        osp.join(REPO, 'configs/_base_/pipelines/mocov2_photometric.py'))
    cfgs = [
        dict(t, prob=1.) for t in photometric.to_dict()['mocov2_photometric']
    ] + [
        dict(type='mmpretrain.Solarize', thr=128, prob=1.),
    ]
    rng = np.random.default_rng(0)
    res = dict(
        img=rng.integers(0, 255, (40, 50, 3), dtype=np.uint8),
        img_shape=(40, 50),
        proposals=helpers.random_boxes(rng, 5, 40, 50),
        region_ids=np.arange(5, dtype=np.int64),
        view_affine=np.array([-2, 100, 2, 0], np.float32))
    with DefaultScope.overwrite_default_scope('mmregion'):
        for c in cfgs:
            out = TRANSFORMS.build(c)(copy.deepcopy(res))
            assert out.keys() == res.keys(), c['type']
            assert out['img'].shape == (40, 50, 3), c['type']
            assert not np.array_equal(out['img'], res['img']), c['type']
            for k in ('proposals', 'region_ids', 'view_affine', 'img_shape'):
                np.testing.assert_array_equal(out[k], res[k])
