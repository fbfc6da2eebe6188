import pytest
import torch

from mmregion.models.necks import ObjectEmbeddingNeck
from mmregion.registry import MODELS
from mmregion.utils import register_all_modules


@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_linear_relu_stack_on_every_query(num_layers):
    """Linear layers with ReLU in between and none after the last,
    applied to every query: (B, N, C_in) -> (B, N, C_out)."""
    register_all_modules()
    torch.manual_seed(0)
    neck = MODELS.build(
        dict(
            type='ObjectEmbeddingNeck',
            in_channels=8,
            hid_channels=16,
            out_channels=4,
            num_layers=num_layers))
    x = torch.randn(2, 5, 8)
    out = neck(x)
    assert out.shape == (2, 5, 4)
    ref = x
    for i, linear in enumerate(neck.layers):
        ref = linear(ref)
        if i < num_layers - 1:
            ref = ref.relu()
    torch.testing.assert_close(out, ref)
    assert (out < 0).any()  # no ReLU after the last layer


def test_bad_num_layers():
    with pytest.raises(ValueError, match='num_layers'):
        ObjectEmbeddingNeck(8, 16, 4, num_layers=0)
