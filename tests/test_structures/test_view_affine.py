"""mmregion.structures.view_affine: the one home of the [sx, tx, sy, ty]
maths (issue 13), checked against the formulas it replaced."""
import numpy as np
import pytest
import torch

from mmregion.structures import (affine_boxes, affine_points, compose_affine,
                                 identity_affine, invert_affine, map_xy,
                                 relative_affine)

AFFINES = [
    [1., 0., 1., 0.],
    [0.5, -3., 2., 7.],
    [-1.25, 90., 0.75, -4.],  # flipped
]


def _boxes(n=6, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (n, 2))
    wh = rng.uniform(1, 30, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def _old_map_boxes(boxes, sx, tx, sy, ty):
    """datasets/transforms/box_utils.map_boxes before the move."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    xs = boxes[:, 0::2] * np.float32(sx) + np.float32(tx)
    ys = boxes[:, 1::2] * np.float32(sy) + np.float32(ty)
    return np.stack(
        [xs.min(axis=1),
         ys.min(axis=1),
         xs.max(axis=1),
         ys.max(axis=1)],
        axis=1).astype(np.float32)


def _old_affine_to_original(boxes, view_affine):
    """task_modules/point_sampler.affine_to_original before the move."""
    sx, tx, sy, ty = view_affine.unsqueeze(-2).unbind(-1)
    xa, xb = (boxes[..., 0] - tx) / sx, (boxes[..., 2] - tx) / sx
    ya, yb = (boxes[..., 1] - ty) / sy, (boxes[..., 3] - ty) / sy
    return torch.stack([
        torch.minimum(xa, xb),
        torch.minimum(ya, yb),
        torch.maximum(xa, xb),
        torch.maximum(ya, yb)
    ], -1)


@pytest.mark.parametrize('aff', AFFINES)
def test_boxes_equal_the_old_numpy_formula(aff):
    boxes = _boxes()
    ours = affine_boxes(boxes, np.float32(aff))
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, _old_map_boxes(boxes, *aff))


def test_inverse_boxes_equal_the_old_torch_formula():
    boxes = torch.from_numpy(np.stack([_boxes(seed=s) for s in range(3)]))
    aff = torch.tensor(AFFINES)  # (V=3, 4), boxes (V, K, 4)
    ours = affine_boxes(boxes, aff.unsqueeze(-2), inverse=True)
    assert torch.equal(ours, _old_affine_to_original(boxes, aff))


@pytest.mark.parametrize('aff', AFFINES)
def test_round_trip_numpy_and_torch(aff):
    boxes = _boxes().astype(np.float64)
    a = np.asarray(aff)
    back = affine_boxes(affine_boxes(boxes, a), a, inverse=True)
    np.testing.assert_allclose(back, boxes, rtol=1e-12, atol=1e-12)
    pts = torch.from_numpy(boxes[:, :2])
    t = torch.from_numpy(a)
    back = affine_points(affine_points(pts, t), t, inverse=True)
    assert torch.allclose(back, pts, rtol=1e-12, atol=1e-12)
    # the inverse affine is the inverse map
    np.testing.assert_allclose(
        affine_boxes(boxes, invert_affine(a)),
        affine_boxes(boxes, a, inverse=True),
        rtol=1e-12,
        atol=1e-12)


def test_flip_swaps_the_corners():
    w = 100.
    flip = np.float32([-1., w, 1., 0.])
    out = affine_boxes(np.float32([[10., 5., 30., 20.]]), flip)
    np.testing.assert_array_equal(out, [[70., 5., 90., 20.]])
    assert (out[:, 2] >= out[:, 0]).all()
    x, y = map_xy(np.float32(10.), np.float32(5.), flip)
    assert (x, y) == (90., 5.)


def test_compose_follows_first_then_second():
    first, then = np.asarray(AFFINES[1]), np.asarray(AFFINES[2])
    composed = compose_affine(first, then)
    assert composed.dtype == np.float32
    pts = np.array([[3., 4.], [50., -2.]])
    np.testing.assert_allclose(
        affine_points(pts, composed.astype(np.float64)),
        affine_points(affine_points(pts, first), then),
        rtol=1e-6)
    # the old formula (box_utils.compose_affine before the move)
    sx, tx, sy, ty = then
    a = first
    old = np.array([sx * a[0], sx * a[1] + tx, sy * a[2], sy * a[3] + ty],
                   dtype=np.float32)
    np.testing.assert_array_equal(composed, old)
    np.testing.assert_array_equal(
        compose_affine(identity_affine(), first), np.float32(first))


def test_relative_affine_maps_between_views():
    src, dst = np.asarray(AFFINES[1]), np.asarray(AFFINES[2])
    boxes = _boxes().astype(np.float64)
    in_src = affine_boxes(boxes, src)
    np.testing.assert_allclose(
        affine_boxes(in_src, relative_affine(src, dst)),
        affine_boxes(boxes, dst),
        rtol=1e-9,
        atol=1e-9)
    np.testing.assert_allclose(
        relative_affine(src, src), identity_affine(), atol=1e-12)
