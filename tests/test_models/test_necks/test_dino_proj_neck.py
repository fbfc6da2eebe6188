"""DINOProjNeck's forward contract: shapes, normalisation, BatchNorm."""
import torch

from mmregion.registry import MODELS


def _head():
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='DINOProjNeck',
            in_channels=8,
            hid_channels=16,
            bottleneck_channels=6,
            num_prototypes=10))


def test_shapes_and_normalisation():
    head = _head()
    feats, logits = head((torch.randn(12, 8), ))
    assert feats.shape == (12, 6) and logits.shape == (12, 10)
    torch.testing.assert_close(
        feats.norm(dim=-1), torch.ones(12), rtol=1e-5, atol=1e-5)
    # logits are cosines against unit prototypes (fixed norm 1)
    assert logits.abs().max() <= 1 + 1e-5
    (logits.sum() + feats.sum()).backward()
    assert head.prototypes.grad is not None


def test_batchnorm_uses_batch_statistics_only_in_training():
    head = _head()
    x = torch.randn(12, 8)
    head.train()
    full = head((x, ))[0]
    # in training a point's output depends on the rest of the batch
    assert not torch.allclose(head((x[:6], ))[0], full[:6], atol=1e-4)
    head.eval()
    frozen = head((x, ))[0]
    torch.testing.assert_close(
        head((x[:6], ))[0], frozen[:6], rtol=1e-5, atol=1e-5)
