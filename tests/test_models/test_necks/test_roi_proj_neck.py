import torch
from mmcv.ops import roi_align

from mmregion.models.necks import LinearProjNeck, RoIProjNeck
from mmregion.models.necks.roi_proj_neck import soco_level_assign


def test_soco_level_assign():
    # sqrt(area) = 40, 48, 60, 100, 200, 300
    sides = torch.tensor([40., 48., 60., 100., 200., 300.])
    rois = torch.zeros(6, 5)
    rois[:, 3] = sides
    rois[:, 4] = sides
    levels = soco_level_assign(rois, (48, 96, 192), num_levels=4)
    assert levels.tolist() == [0, 0, 1, 2, 3, 3]
    # thresholds scaled to a 112-px view: 24 / 48 / 96
    neck = RoIProjNeck(in_channels=2, hid_channels=4, out_channels=3)
    feats = [torch.randn(1, 2, 112 // s, 112 // s) for s in (4, 8, 16, 32)]
    rois = torch.tensor([[0., 0., 0., 20., 20.], [0., 0., 0., 40., 40.],
                         [0., 0., 0., 90., 90.], [0., 0., 0., 110., 110.]])
    pooled = neck.pool(feats, rois, view_size=112.)
    for i, (feat, stride) in enumerate(zip(feats, (4, 8, 16, 32))):
        ref = roi_align(feat, rois[i:i + 1], (7, 7), 1. / stride, 0, 'avg',
                        True)
        assert torch.allclose(pooled[i:i + 1], ref, atol=1e-6)


def test_roi_proj_neck_shapes_and_grad():
    # seeded, no dropout: with 8 hidden units a roi could otherwise have all
    # of them dropped or dead and send no gradient (~3% of seeds)
    torch.manual_seed(0)
    neck = RoIProjNeck(
        in_channels=4, hid_channels=32, out_channels=5, dropout=0.)
    feats = [
        torch.randn(2, 4, 64 // s, 64 // s, requires_grad=True)
        for s in (4, 8, 16, 32)
    ]
    # sides 10 / 20 / 40 / 60 px: one roi per level (thresholds 14/27/55)
    rois = torch.tensor([[0., 1., 1., 11., 11.], [1., 5., 5., 25., 25.],
                         [0., 2., 2., 42., 42.], [1., 0., 0., 60., 60.]])
    out = neck(feats, rois, 64.)[0]
    assert out.shape == (4, 5)
    out.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert neck(feats, rois[:0], 64.)[0].shape == (0, 5)


def test_roi_proj_neck_forward_keeps_roi_order():
    """forward() embeds level-grouped rois and restores the roi order: equal
    to the MLP on pool() (which is in roi order) for shuffled levels."""
    torch.manual_seed(0)
    neck = RoIProjNeck(
        in_channels=4, hid_channels=16, out_channels=5, dropout=0.)
    feats = [torch.randn(2, 4, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    sides = torch.tensor([60., 10., 40., 20., 12., 58., 30., 45.])
    rois = torch.zeros(8, 5)
    rois[:, 0] = torch.tensor([0., 1., 1., 0., 1., 0., 0., 1.])
    rois[:, 3:] = sides[:, None]
    levels = soco_level_assign(rois, [s * 64 / 224 for s in (48, 96, 192)], 4)
    assert len(set(levels.tolist())) == 4  # rois of every level, mixed
    out = neck(feats, rois, 64.)[0]
    ref = neck.mlp((neck.pool(feats, rois, 64.), ))[0]
    assert torch.allclose(out, ref, atol=1e-6)
    for i in range(8):  # pool() row i is roi i
        lvl = int(levels[i])
        ref_i = roi_align(feats[lvl], rois[i:i + 1], (7, 7), 1. / (4 * 2**lvl),
                          0, 'avg', True)
        assert torch.allclose(
            neck.pool(feats, rois, 64.)[i:i + 1], ref_i, atol=1e-6)


def test_linear_proj_neck():
    neck = LinearProjNeck(8, 16, 4, with_avg_pool=True, dropout=0.1)
    assert neck((torch.randn(3, 8, 5, 5), ))[0].shape == (3, 4)
