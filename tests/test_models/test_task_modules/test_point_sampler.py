import pytest
import torch

from mmregion.models.task_modules.point_sampler import (
    RegionPointSampler, affine_to_original, sample_common_region_points,
    sample_point_features)


def _random_views(B=4, V=2, K=6, size=256.0, seed=0):
    """Random original boxes seen through random crops/scales/flips."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(B, K, 2, generator=g) * 150
    wh = torch.rand(B, K, 2, generator=g) * 80 + 4
    orig = torch.cat([xy, xy + wh], -1)  # (B, K, 4) original pixels
    sx = torch.rand(B, V, generator=g) * 1.5 + 0.3
    sy = torch.rand(B, V, generator=g) * 1.5 + 0.3
    flip = torch.rand(B, V, generator=g) < 0.5
    tx = -torch.rand(B, V, generator=g) * 30
    ty = -torch.rand(B, V, generator=g) * 30
    # a flip: x' = W - (sx * x + tx)
    tx = torch.where(flip, size - tx, tx)
    sx = torch.where(flip, -sx, sx)
    aff = torch.stack([sx, tx, sy, ty], -1)  # (B, V, 4)
    x1 = aff[..., 0, None] * orig[:, None, :, 0] + aff[..., 1, None]
    x2 = aff[..., 0, None] * orig[:, None, :, 2] + aff[..., 1, None]
    y1 = aff[..., 2, None] * orig[:, None, :, 1] + aff[..., 3, None]
    y2 = aff[..., 2, None] * orig[:, None, :, 3] + aff[..., 3, None]
    boxes = torch.stack([
        torch.minimum(x1, x2),
        torch.minimum(y1, y2),
        torch.maximum(x1, x2),
        torch.maximum(y1, y2)
    ], -1).clamp(0, size)  # clipped to each view, like the pipeline
    valid = torch.rand(B, K, generator=g) < 0.8
    return boxes, valid, aff


@pytest.mark.parametrize('seed', range(5))
def test_points_inside_region_in_all_views(seed):
    boxes, valid, aff = _random_views(seed=seed)
    pts, pvalid = sample_common_region_points(
        boxes,
        valid,
        aff,
        num_points=32,
        generator=torch.Generator().manual_seed(seed))
    assert pts.shape == (4, 2, 6, 32, 2)
    assert torch.isfinite(pts).all()
    assert not (pvalid & ~valid).any()  # padded regions stay masked
    assert pvalid.any()
    eps = 1e-3
    b = boxes[:, :, :, None]  # (B, V, K, 1, 4)
    inside = ((pts[..., 0] >= b[..., 0] - eps) &
              (pts[..., 0] <= b[..., 2] + eps)
              & (pts[..., 1] >= b[..., 1] - eps)
              & (pts[..., 1] <= b[..., 3] + eps))
    assert inside.all(-1).all(1)[pvalid].all()
    # the same point maps to the same original location in both views
    sx, tx, sy, ty = aff.unbind(-1)
    ox = (pts[..., 0] - tx[:, :, None, None]) / sx[:, :, None, None]
    oy = (pts[..., 1] - ty[:, :, None, None]) / sy[:, :, None, None]
    m = pvalid[:, None, :, None].expand_as(ox)[:, 0]
    assert torch.allclose(ox[:, 0][m], ox[:, 1][m], atol=1e-3)
    assert torch.allclose(oy[:, 0][m], oy[:, 1][m], atol=1e-3)


def test_disjoint_region_is_masked():
    # region visible in the two views at disjoint original locations
    boxes = torch.tensor([[[[0., 0., 10., 10.]], [[20., 20., 30., 30.]]]])
    aff = torch.tensor([[[1., 0., 1., 0.], [1., 0., 1., 0.]]])
    pts, valid = sample_common_region_points(
        boxes, torch.ones(1, 1, dtype=torch.bool), aff, 4)
    assert not valid.any() and (pts == 0).all()


def test_flip_back_mapping():
    boxes = torch.tensor([[[[10., 0., 30., 5.]]]])
    aff = torch.tensor([[[-1., 100., 1., 0.]]])  # flip of a 100 px image
    orig = affine_to_original(boxes, aff)
    assert torch.allclose(orig, torch.tensor([[[[70., 0., 90., 5.]]]]))
    with pytest.raises(ValueError, match='view_affine'):
        affine_to_original(boxes, torch.zeros(1, 1, 4))


def test_grid_sample_reads_the_right_cell():
    # stride-8 map of a 32x32 image: cell (i, j) has value 10*i + j
    h = w = 4
    feat = (torch.arange(h)[:, None] * 10 + torch.arange(w)[None]).float()
    feat = feat.view(1, 1, h, w)
    centres = torch.tensor([[[4., 4.], [12., 4.], [28., 20.]]])  # xy
    out = sample_point_features(feat, centres, (32, 32))
    assert torch.allclose(out.view(-1), torch.tensor([0., 1., 23.]))
    out = sample_point_features(feat, centres, (32, 32), align_corners=True)
    assert torch.allclose(out.view(-1), torch.tensor([0., 1., 23.]))


def test_sampler_read_shapes():
    sampler = RegionPointSampler(num_points=5)
    boxes, valid, aff = _random_views(B=2, K=3)
    pts, valid = sampler.sample(boxes, valid, aff)
    feats = torch.randn(2, 7, 8, 8)
    out = sampler.read(feats, pts[:, 0], (256, 256))
    assert out.shape == (2, 3, 5, 7)
    with pytest.raises(ValueError):
        RegionPointSampler(num_points=0)
