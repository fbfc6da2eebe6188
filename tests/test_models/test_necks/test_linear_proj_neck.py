"""LinearProjNeck: [avgpool] -> Linear -> Dropout -> ReLU -> Linear."""
import pytest
import torch

from mmregion.registry import MODELS


def _neck(**kw):
    cfg = dict(
        type='LinearProjNeck', in_channels=8, hid_channels=16, out_channels=4)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_pooled_map_to_embedding():
    torch.manual_seed(0)
    neck = _neck().eval()
    x = torch.randn(3, 8, 5, 6)
    (out, ) = neck((x, ))
    assert out.shape == (3, 4)
    # the pool is a mean over H, W: a constant map of the means gives the same
    means = x.mean((2, 3), keepdim=True).expand_as(x)
    torch.testing.assert_close(neck((means, ))[0], out, rtol=1e-5, atol=1e-6)


def test_without_pool_flattens_and_checks_the_size():
    neck = _neck(in_channels=2 * 2 * 2, with_avg_pool=False)
    assert neck((torch.randn(3, 2, 2, 2), ))[0].shape == (3, 4)
    with pytest.raises(ValueError, match='expected 8 input features, got 12'):
        neck((torch.randn(3, 3, 2, 2), ))


def test_dropout_only_in_training():
    torch.manual_seed(0)
    neck = _neck(in_channels=8, hid_channels=64, dropout=0.5)
    x = torch.randn(4, 8, 2, 2)
    neck.eval()
    torch.testing.assert_close(neck((x, ))[0], neck((x, ))[0])
    neck.train()
    assert not torch.allclose(neck((x, ))[0], neck((x, ))[0])


def test_default_init_is_normal_small():
    neck = _neck(in_channels=256, hid_channels=512)
    neck.init_weights()
    w = neck.mlp[0].weight
    assert abs(w.std().item() - 0.01) < 0.002
    assert neck.mlp[0].bias.abs().max() == 0
