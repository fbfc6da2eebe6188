"""models/utils/cell_pairs.py: PLRC's cell pairs against the release's rule."""
import pytest
import torch
from plrc_views import IMG, grid_views, official_pairs, pair_set

from mmregion.models.utils.cell_pairs import (dense_cell_pairs,
                                              keep_random_pairs,
                                              pair_frame_scale, unique_cells)


def test_dense_cell_pairs_equal_the_official_rule():
    # views 0, 1 (flipped), 0' (smaller crop: its cells pair with several)
    _, samples = grid_views(B=3, seed=3, V=3)
    aff = torch.stack([s.view_affine for s in samples])
    ori = torch.tensor([[128., 128.], [96., 160.], [150., 110.]])
    scale = pair_frame_scale('normalized', ori, 3)
    assert torch.allclose(scale, 1. / (ori[:, [1, 0]] - 1))
    S = 8
    for src, dst in [(0, 1), (0, 2), (2, 0), (1, 0)]:
        got = pair_set(
            *dense_cell_pairs(aff, (IMG, IMG), S, src, dst, 0.5, scale))
        ref = official_pairs(aff, (IMG, IMG), ori, S, src, dst)
        assert got == ref, (src, dst, len(got), len(ref))
        assert len(ref) > 0
    # several target cells per student cell, as the release
    _, counts = torch.tensor(sorted(got))[:, :2].unique(
        dim=0, return_counts=True)
    assert counts.max() > 1


def test_dense_cell_pairs_simple_geometry():
    ident = torch.tensor([[[1., 0., 1., 0.], [1., 0., 1., 0.]]])
    src, dst, ok = dense_cell_pairs(ident, (32, 32), 4, 0, 1)
    assert ok.all() and torch.equal(src[0], torch.arange(16))
    assert torch.equal(dst[0], torch.arange(16))  # only itself within 0.5
    flip = torch.tensor([[[1., 0., 1., 0.], [-1., 32., 1., 0.]]])
    src, dst, ok = dense_cell_pairs(flip, (32, 32), 4, 0, 1)
    expected = (torch.arange(4)[:, None] * 4 + 3 - torch.arange(4)[None])
    assert ok.all() and torch.equal(dst[0], expected.view(-1))
    # view 1 shows the top-right quarter at 2x: its cells are half as wide,
    # so each view-0 cell of that quarter is within reach of 2x2 of them
    quarter = torch.tensor([[[1., 0., 1., 0.], [2., -32., 2., 0.]]])
    src, dst, ok = dense_cell_pairs(quarter, (32, 32), 4, 0, 1)
    pairs = pair_set(src, dst, ok)
    assert {i for _, i, _ in pairs} == {2, 3, 6, 7}
    assert {j for _, i, j in pairs if i == 2} == {0, 1, 4, 5}
    assert len(pairs) == 16


def test_pair_frame_scale_needs_ori_shape_when_normalized():
    assert pair_frame_scale('pixels', None, 2) is None
    with pytest.raises(ValueError, match='ori_shape'):
        pair_frame_scale('normalized', None, 2)
    with pytest.raises(ValueError, match='ori_shape'):
        pair_frame_scale('normalized', torch.ones(3, 2), 2)


def test_keep_random_pairs_keeps_real_pairs_first():
    src = torch.arange(12).view(2, 6)
    dst = src + 100
    ok = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]]).bool()
    assert keep_random_pairs(src, dst, ok, None)[0] is src
    assert keep_random_pairs(src, dst, ok, 6)[0] is src
    torch.manual_seed(0)
    s2, d2, ok2 = keep_random_pairs(src, dst, ok, 2)
    assert s2.shape == (2, 2) and ok2.all()  # every image has >= 2 real
    assert torch.equal(d2, s2 + 100)  # pairs stay together
    s4, _, ok4 = keep_random_pairs(src, dst, ok, 4)
    assert ok4.sum(1).tolist() == [3, 4]  # all 3 real pairs of image 0


def test_unique_cells_maps_each_pair_to_its_cell():
    idx = torch.tensor([[5, 2, 5, 7], [1, 1, 1, 0]])
    ok = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    cells, pos = unique_cells(idx, ok, 9)
    assert cells.shape == (2, 2)
    assert set(cells[0].tolist()) == {2, 5} and 1 in cells[1].tolist()
    real = cells.gather(1, pos)[ok]
    assert torch.equal(real, idx[ok])
