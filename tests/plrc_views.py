"""PLRC test helpers: crops of a gridded image with their view affines,
and the release's cell-pair rule written as a loop (``from plrc_views import
grid_views``; ``tests/`` is on ``sys.path`` through its ``conftest.py``)."""
import math

import torch
from mmpretrain.structures import DataSample

IMG = 64


def grid_views(B=3, jitter=0., seed=0, V=3):
    """``V`` random crops (with flips) of a 128 px image with a 4x4 grid of
    regions, resized to 64 px; boxes aligned across views (a region is kept
    when it is in views 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing='ij')
    grid = torch.stack([xs, ys, xs + 1, ys + 1], -1).view(-1, 4).float() * 32
    samples = []
    for _ in range(B):
        affs, vboxes = [], []
        for _ in range(V):
            side = float(torch.rand(1, generator=g)) * 40 + 80
            x0 = float(torch.rand(1, generator=g)) * (128 - side)
            y0 = float(torch.rand(1, generator=g)) * (128 - side)
            s = IMG / side
            aff = [s, -s * x0, s, -s * y0]
            if torch.rand(1, generator=g) < 0.5:
                aff = [-s, IMG + s * x0, s, -s * y0]
            a = torch.tensor(aff)
            bx = torch.stack([
                a[0] * grid[:, 0] + a[1], a[2] * grid[:, 1] + a[3],
                a[0] * grid[:, 2] + a[1], a[2] * grid[:, 3] + a[3]
            ], -1)
            bx = torch.stack([
                torch.minimum(bx[:, 0], bx[:, 2]), bx[:, 1],
                torch.maximum(bx[:, 0], bx[:, 2]), bx[:, 3]
            ], -1).clamp(0, IMG)
            affs.append(a)
            vboxes.append(bx)
        boxes = torch.stack(vboxes)  # (V, 16, 4)
        keep = ((boxes[:2, :, 2] - boxes[:2, :, 0] > 2) &
                (boxes[:2, :, 3] - boxes[:2, :, 1] > 2)).all(0)
        boxes = boxes[:, keep]
        if jitter:
            boxes = boxes + torch.randn(boxes.shape, generator=g) * jitter
        ds = DataSample()
        ds.set_field(boxes, 'boxes')
        ds.set_field(torch.stack(affs), 'view_affine')
        ds.set_metainfo(dict(ori_shape=(128, 128)))
        samples.append(ds)
    inputs = [torch.randn(B, 3, IMG, IMG, generator=g) for _ in range(V)]
    return inputs, samples


def official_pairs(aff, img_shape, ori_shape, S, src, dst, ratio=0.5):
    """The release's rule (PLRC ``models/utils.py`` ``overlap()``), written
    as a loop: each view's crop as ``(x1, y1, x2, y2)`` in coordinates
    normalised by the original ``(W - 1, H - 1)`` (x1 > x2 when flipped,
    ``RandomHorizontalFlipCoord``), cell centres ``x1 + (k + 0.5) * (x2 -
    x1) / S``, a pair when the distance of the centres is below ``ratio``
    times the larger cell diagonal. Returns the set of (b, i, j)."""
    H, W = img_shape
    pairs = set()
    for b in range(aff.size(0)):
        oh, ow = (float(v) for v in ori_shape[b])
        coords = []
        for v in (src, dst):
            sx, tx, sy, ty = (float(c) for c in aff[b, v])
            coords.append(((0 - tx) / sx / (ow - 1), (0 - ty) / sy / (oh - 1),
                           (W - tx) / sx / (ow - 1), (H - ty) / sy / (oh - 1)))
        cells = []
        for x1, y1, x2, y2 in coords:
            bw, bh = (x2 - x1) / S, (y2 - y1) / S
            cells.append(([(x1 + (k % S + 0.5) * bw, y1 + (k // S + 0.5) * bh)
                           for k in range(S * S)], math.hypot(bw, bh)))
        (cq, dq), (ck, dk) = cells
        for i, (xq, yq) in enumerate(cq):
            for j, (xk, yk) in enumerate(ck):
                if math.hypot(xq - xk, yq - yk) / max(dq, dk) < ratio:
                    pairs.add((b, i, j))
    return pairs


def pair_set(src, dst, ok):
    return {(b, int(src[b, m]), int(dst[b, m]))
            for b, m in ok.nonzero().tolist()}
