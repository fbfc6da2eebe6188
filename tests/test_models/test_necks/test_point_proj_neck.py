"""PointProjNeck: a per-point MLP over the last dimension."""
import pytest
import torch

from mmregion.registry import MODELS


def _neck(**kw):
    cfg = dict(
        type='PointProjNeck', in_channels=8, hid_channels=16, out_channels=4)
    cfg.update(kw)
    return MODELS.build(cfg)


@pytest.mark.parametrize('shape', [(5, 8), (2, 3, 7, 8)])
def test_any_leading_shape_keeps_its_points(shape):
    torch.manual_seed(0)
    neck = _neck().eval()
    x = torch.randn(*shape)
    (out, ) = neck((x, ))
    assert out.shape == (*shape[:-1], 4)
    # per point: the same as projecting the points one by one
    flat = x.reshape(-1, 8)
    one = torch.cat([neck((flat[i:i + 1], ))[0] for i in range(len(flat))])
    torch.testing.assert_close(out.reshape(-1, 4), one, rtol=1e-5, atol=1e-6)


def test_layers_and_bn():
    neck = _neck(num_layers=3, with_bn=True)
    linears = [m for m in neck.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(16, 8), (16, 16),
                                                        (4, 16)]
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in neck.modules())
    assert not any(
        isinstance(m, torch.nn.BatchNorm1d) for m in _neck().modules())
    (out, ) = neck((torch.randn(6, 8), ))
    out.sum().backward()
    assert linears[0].weight.grad is not None
