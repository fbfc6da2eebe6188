"""models/utils/dense_ops.py: exact rows of a bilinearly upsampled map."""
import torch
import torch.nn.functional as F

from mmregion.models.utils.dense_ops import (read_upsampled_rows,
                                             upsampled_affinity)


def test_read_upsampled_rows_equals_interpolate():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 4, generator=g)
    for S in (8, 7, 3):
        idx = torch.randint(0, S * S, (2, 11), generator=g)
        dense = F.interpolate(
            x, size=(S, S), mode='bilinear', align_corners=False)
        dense = dense.flatten(2).transpose(1, 2)  # (2, S*S, 5)
        ref = dense.gather(1, idx[..., None].expand(-1, -1, 5))
        out = read_upsampled_rows(x, idx, S)
        assert torch.allclose(out, ref, atol=1e-5), S


def test_upsampled_affinity_equals_dense_product():
    g = torch.Generator().manual_seed(1)
    rows = torch.randn(2, 6, 5, generator=g)
    ref_map = torch.randn(2, 5, 3, 2, generator=g)
    S = 4
    dense = F.interpolate(
        ref_map, size=(S, S), mode='bilinear', align_corners=False)
    expected = rows @ dense.flatten(2)  # (2, 6, S*S)
    assert torch.allclose(
        upsampled_affinity(rows, ref_map, S), expected, atol=1e-5)
