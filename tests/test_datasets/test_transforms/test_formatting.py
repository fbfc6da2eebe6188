import numpy as np
import pytest
import torch

pytest.importorskip('mmpretrain')

from mmregion.datasets.transforms import PackRegionInputs  # noqa: E402


def test_pack_multi_view():
    imgs = [
        np.random.randint(0, 255, (32, 48, 3), np.uint8),
        np.random.randint(0, 255, (32, 48), np.uint8)  # grayscale 2-D
    ]
    boxes = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    res = dict(
        img=imgs,
        img_shape=[(32, 48), (32, 48)],
        boxes=boxes,
        region_ids=np.array([0, 4, 7]),
        view_affine=np.array([[1, 0, 1, 0], [-2, 96, 2, 0]], np.float32),
        img_path='a.jpg',
        img_id=3,
        ori_shape=(32, 48),
        flip=True)
    out = PackRegionInputs().transform(res)
    x0, x1 = out['inputs']
    assert x0.shape == (3, 32, 48) and x0.dtype == torch.uint8
    assert x0.is_contiguous() and torch.equal(
        x0,
        torch.from_numpy(imgs[0]).permute(2, 0, 1))
    assert x1.shape == (1, 32, 48)
    ds = out['data_samples']
    assert torch.equal(ds.boxes, torch.from_numpy(boxes))
    assert ds.region_ids.dtype == torch.long
    assert ds.region_ids.tolist() == [0, 4, 7]
    assert ds.view_affine.dtype == torch.float32
    assert ds.view_affine[1].tolist() == [-2, 96, 2, 0]
    assert ds.metainfo == dict(
        img_path='a.jpg',
        img_id=3,
        ori_shape=(32, 48),
        img_shape=[(32, 48), (32, 48)])


def test_pack_single_view_and_bad_boxes():
    res = dict(
        img=np.zeros((16, 20, 3), np.uint8),
        img_shape=(16, 20),
        proposals=np.array([[1, 2, 3, 4]], np.float32),
        region_ids=np.array([5]),
        view_affine=np.array([1, 0, 1, 0], np.float32))
    out = PackRegionInputs().transform(dict(res))
    assert len(out['inputs']) == 1
    assert out['data_samples'].boxes.shape == (1, 1, 4)
    assert out['data_samples'].img_shape == [(16, 20)]
    bad = dict(res, img=[res['img']] * 2, boxes=np.zeros((1, 1, 4)))
    with pytest.raises(ValueError, match=r'\(V, K, 4\) with V=2'):
        PackRegionInputs().transform(bad)
