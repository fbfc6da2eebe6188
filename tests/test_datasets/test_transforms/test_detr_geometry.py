"""DETReg's pre-training geometry as a pipeline option (issue 24 item 6):
DETR's multi-scale resize / size crop on region boxes, padded to a canvas."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from mmregion.datasets.transforms import (RegionPadToCanvas,
                                          RegionRandomChoiceResize,
                                          RegionRandomSizeCrop)
from mmregion.datasets.transforms.detr_geometric import detr_resize_shape

ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SCALES = [320, 336, 352, 368, 400, 416, 432, 448, 464, 480]


def test_detr_resize_shape_is_detrs_formula():
    # DETR get_size_with_aspect_ratio: 640x480 (w x h), size 480, max 600:
    # 640/480*480 = 640 > 600 -> size = round(600*480/640) = 450
    assert detr_resize_shape(480, 640, 480, 600) == (450, 600)
    assert detr_resize_shape(480, 640, 320, 600) == (320, 426)
    assert detr_resize_shape(640, 480, 400, None) == (533, 400)
    assert detr_resize_shape(480, 480, 480, 600) == (480, 480)


def _sample(h=480, w=640):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [w - 60, h - 60], (20, 2))
    boxes = np.concatenate([xy, xy + 50], 1).astype(np.float32)
    return dict(
        img=rng.integers(0, 255, (h, w, 3), np.uint8),
        img_shape=(h, w),
        ori_shape=(h, w),
        proposals=boxes,
        region_ids=np.arange(20),
        view_affine=np.array([1, 0, 1, 0], np.float32))


def test_resize_crop_pad_carry_boxes():
    np.random.seed(0)
    out = RegionRandomChoiceResize([400], max_size=600)(_sample())
    assert out['img'].shape[:2] == out['img_shape'] == (400, 533)
    np.testing.assert_allclose(
        out['view_affine'], [533 / 640, 0, 400 / 480, 0], rtol=1e-6)
    crop = RegionRandomSizeCrop(384, 600)(out)
    ch, cw = crop['img_shape']
    assert 384 <= ch <= 400 and 384 <= cw <= 533
    b = crop['proposals']
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= cw).all()
    assert (b[:, 2] > b[:, 0]).all() and len(b) == len(crop['region_ids'])
    padded = RegionPadToCanvas((608, 608))(crop)
    assert padded['img'].shape[:2] == (608, 608)
    assert padded['img_shape'] == (ch, cw)
    assert (padded['img'][ch:] == 0).all() and (padded['img'][:, cw:]
                                                == 0).all()
    with pytest.raises(ValueError, match='larger than the 100x100 canvas'):
        RegionPadToCanvas((100, 100))(_sample())


def test_detreg_geometry_option_yields_detreg_sizes(toy_coco, toy_proposals):
    """The config's detreg_geometry_pipeline runs on toy images: short side
    one of DETReg's scales (or less when the long side hits 600), long side
    <= 600 (+ DETR's rounding), images padded to 608x608 with img_shape
    their own size."""
    from mmengine.registry import init_default_scope

    from mmregion.datasets import RegionDataset
    init_default_scope('mmregion')
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'mmregion',
                 'detreg_deformable-detr_r50_coco.py'))
    pipeline = cfg.detreg_geometry_pipeline
    pipeline[1]['proposal_file'] = str(toy_proposals)
    # the patches' colour augmentation is not what is tested here
    pipeline[-2]['transforms'] = []
    ds = RegionDataset(
        ann_file=str(toy_coco / 'annotations' / 'instances_train.json'),
        data_prefix=dict(img=str(toy_coco / 'train')),
        pipeline=pipeline)
    np.random.seed(0)
    shapes = []
    for i in range(16):
        data = ds[i % len(ds)]
        inputs, sample = data['inputs'], data['data_samples']
        assert tuple(inputs[0].shape[-2:]) == (608, 608)
        h, w = sample.metainfo['img_shape'][0]
        shapes.append((h, w))
        assert max(h, w) <= 602
        assert min(h, w) in SCALES or max(h, w) >= 598
    # both branches and several scales are drawn
    assert len(set(shapes)) > 3
