"""KeepSourceRegions + BoxPatches: DETReg's per-box patches (issue 24)."""
import copy

import numpy as np
import pytest
import torch
from PIL import Image

from mmregion.datasets.transforms import (BoxPatches, KeepSourceRegions,
                                          MultiViewRegions, PackRegionInputs,
                                          RegionRandomFlip,
                                          RegionRandomResizedCrop)
from mmregion.registry import TRANSFORMS
from mmregion.structures import identity_affine


def _results(seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    boxes = np.array([[3.4, 5.6, 60.5, 70.2], [40., 10., 118.7, 88.],
                      [10., 20., 18., 26.], [0., 0., 120., 90.]], np.float32)
    return dict(
        img=img,
        img_shape=img.shape[:2],
        proposals=boxes,
        region_ids=np.arange(4, dtype=np.int64),
        view_affine=identity_affine())


def _pil_patch(img, box, size):
    """DETReg: ``img.crop(box)`` then torchvision ``Resize((size, size))``
    on a PIL image (PIL bilinear, antialiased)."""
    crop = Image.fromarray(img).crop(tuple(float(v) for v in box))
    return np.asarray(crop.resize((size, size), Image.BILINEAR))


def test_patches_are_crops_of_the_original_image():
    np.random.seed(0)
    res = KeepSourceRegions()(_results())
    img, boxes = res['img'], res['proposals'].copy()
    # geometry first (a crop that cuts the boxes), then the views
    res = RegionRandomResizedCrop(scale=48, crop_ratio_range=(0.3, 0.6))(res)
    res = RegionRandomFlip(prob=1.)(res)
    res = MultiViewRegions(transforms=[[]], num_views=1, min_regions=0)(res)
    counted = []

    def count(r):
        counted.append(r['img'].shape)
        return r

    res = BoxPatches(size=32, transforms=[count])(res)
    ids = res['region_ids']
    assert len(ids) > 0 and 'patch_source' not in res
    assert res['patches'].shape == (len(ids), 32, 32, 3)
    assert counted == [(32, 32, 3)] * len(ids)  # one call per patch
    for k, i in enumerate(ids):
        ref = _pil_patch(img, boxes[i], 32)
        # unclipped original box, not the view's clipped/flipped one
        assert np.abs(res['patches'][k].astype(int) - ref).max() <= 1
    ds = PackRegionInputs()(res)['data_samples']
    assert ds.patches.shape == (len(ids), 3, 32, 32)
    assert ds.patches.dtype == torch.uint8
    assert torch.equal(ds.patches[0],
                       torch.from_numpy(res['patches'][0]).permute(2, 0, 1))


def test_per_patch_colour_jitter_and_shared_source():
    cfg = dict(
        type='BoxPatches',
        size=16,
        transforms=[dict(type='mmpretrain.ColorJitter', brightness=0.8)])
    t = TRANSFORMS.build(cfg)
    res = KeepSourceRegions()(_results())
    assert copy.deepcopy(res)['patch_source'] is res['patch_source']
    res = MultiViewRegions(transforms=[[]], num_views=1, min_regions=0)(res)
    plain = BoxPatches(size=16)(copy.deepcopy(res))['patches']
    np.random.seed(0)
    jittered = t(res)['patches']
    # each patch drew its own jitter: the change differs per patch
    shift = (jittered.astype(float) - plain).reshape(len(plain), -1).mean(1)
    assert len(np.unique(np.round(shift, 3))) == len(plain)


def test_errors():
    res = MultiViewRegions(
        transforms=[[]], num_views=1, min_regions=0)(
            _results())
    with pytest.raises(KeyError, match='KeepSourceRegions'):
        BoxPatches()(res)
    with pytest.raises(KeyError, match='after LoadProposals'):
        KeepSourceRegions()(dict(img=np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ValueError, match='size'):
        BoxPatches(size=0)
    bad = dict(
        _results(),
        boxes=np.zeros((1, 4, 4), np.float32),
        img=[np.zeros((8, 8, 3), np.uint8)],
        img_shape=[(8, 8)],
        view_affine=np.zeros((1, 4), np.float32),
        patches=np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='patches must be'):
        PackRegionInputs()(bad)
