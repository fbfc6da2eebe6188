"""The region probe: bins kept, BN recomputed, linear classifier, k-NN."""
import numpy as np
import pytest
import torch

from mmregion.apis.transfer import probe


class _CoordMaps(torch.nn.Module):
    """C3-C5 maps whose one channel holds the x index of the cell."""

    def forward(self, x):
        h, w = x.shape[-2:]
        return tuple(
            torch.arange(w // s).float().expand(1, 1, h // s, w // s)
            for s in probe.STRIDES)


def test_roi_bins_are_kept_in_order(tmp_path):
    import cv2
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.zeros((64, 64, 3), np.uint8))
    # a box over C3 cells 2-5: aligned RoIAlign bin centres at x = 2, 3, 4
    items = [(path, np.array([[16, 16, 40, 40]], np.float32), np.array([1]))]
    feats, labels = probe.roi_bin_features(
        _CoordMaps(), items, scale=1.0, roi_size=3)
    assert feats.shape == (1, 3 * 9) and labels.tolist() == [1]
    c3 = feats[0, :9].view(3, 3)
    for row in c3:
        assert row.tolist() == pytest.approx([2.0, 3.0, 4.0], abs=1e-5)


def test_recompute_bn_is_the_plain_mean():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].running_mean.fill_(5.0)
    imgs = [torch.randn(3, 8, 8) + i for i in range(6)]
    assert probe.recompute_bn(model, iter(imgs), batch_size=2) == 6
    with torch.no_grad():
        ref = torch.stack([model[0](im[None]).mean((0, 2, 3)) for im in imgs])
    assert torch.allclose(model[1].running_mean, ref.mean(0), atol=1e-5)
    assert not model.training and model[1].momentum == 0.1


def test_linear_probe_picks_on_dev_and_reports_test():
    g = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.arange(n) % 3
        x = torch.randn(n, 5, generator=g) * 0.3
        x[torch.arange(n), y] += 3.0  # class k: large feature k
        return x, y

    res = probe.linear_probe(split(30), split(15), split(21), 3, [1e-2, 1e3])
    assert res['weight_decay'] == 1e-2
    assert set(res['dev_acc']) == {'0.01', '1000.0'}
    assert res['acc'] == pytest.approx(100.0)
    assert len(res['correct']) == 21 and set(res['correct']) == {1}


def test_knn_predict_hand_example():
    bank = torch.tensor([[1., 0.], [0.9, 0.1], [0., 1.]])
    bank = torch.nn.functional.normalize(bank, dim=1)
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[1., 0.05], [0.05, 1.]])
    query = torch.nn.functional.normalize(query, dim=1)
    pred = probe.knn_predict(bank, labels, query, 2, k=1)
    assert pred.tolist() == [0, 1]


def test_region_probe_on_tiny_toy_set(tmp_path):
    from mmregion.testing.toy_data_hard import make_hard_toy_coco
    paths = make_hard_toy_coco(
        str(tmp_path / 'd'), num_train=6, num_val=4, labeled_frac=0.5)
    splits = dict(
        train=(paths['train_labeled_ann'], paths['train_img_dir']),
        dev=(paths['val_ann'], paths['val_img_dir']),
        test=(paths['val_ann'], paths['val_img_dir']))
    import glob
    bn = sorted(glob.glob(paths['train_img_dir'] + '/*'))[:3]
    res = probe.region_probe(
        None,
        splits,
        bn,
        num_classes=10,
        base_channels=8,
        scale=1.0,
        weight_decays=[0.1])
    n = res['num_boxes']['test']
    assert n > 0 and len(res['linear']['correct']) == n
    assert len(res['knn']['correct']) == n
    assert 0 <= res['linear']['acc'] <= 100 and res['bn_images'] == 3
