import torch
import torch.nn.functional as F

from mmregion.models.losses import (IntraImageDiscriminationLoss,
                                    intra_image_discrimination_loss)


def _iou(a, b):
    iw = max(0., min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0., min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (union - inter)


def _reference(q, k, boxes, counts, margin=0.4, neg_iou_thr=0.05):
    terms = []
    for b, n in enumerate(counts):
        for a in range(n):
            for c in range(n):
                if a == c or _iou(boxes[b, a].tolist(),
                                  boxes[b, c].tolist()) >= neg_iou_thr:
                    continue
                s_ac = float(q[b, a] @ k[b, c])
                s_cc = float(q[b, c] @ k[b, c])
                terms.append(max(0., s_ac - s_cc + margin))
    return sum(terms) / len(terms) if terms else 0.


def _inputs(counts, k_max=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(len(counts), k_max, 6, generator=g), dim=-1)
    k = F.normalize(torch.randn(len(counts), k_max, 6, generator=g), dim=-1)
    xy = torch.rand(len(counts), k_max, 2, generator=g) * 60
    wh = torch.rand(len(counts), k_max, 2, generator=g) * 30 + 2
    boxes = torch.cat([xy, xy + wh], dim=-1)
    valid = torch.arange(k_max)[None] < torch.tensor(counts)[:, None]
    return q, k, boxes, valid


def test_intra_loss_matches_loop_reference():
    counts = [5, 3, 4]
    q, k, boxes, valid = _inputs(counts)
    loss = intra_image_discrimination_loss(
        q, k, boxes, valid, reduction='mean')
    ref = _reference(q, k, boxes, counts)
    assert ref > 0
    assert abs(loss.item() - ref) < 1e-5


def test_intra_loss_ignores_padding():
    counts = [4, 2]
    q, k, boxes, valid = _inputs(counts)
    loss = intra_image_discrimination_loss(
        q, k, boxes, valid, reduction='mean')
    q2, k2, boxes2 = q.clone(), k.clone(), boxes.clone()
    q2[~valid] = 100.
    k2[~valid] = -3.
    boxes2[~valid] = torch.tensor([1., 2., 80., 90.])
    loss2 = intra_image_discrimination_loss(
        q2, k2, boxes2, valid, reduction='mean')
    assert torch.allclose(loss, loss2)


def test_intra_loss_zero_or_one_region_is_finite_with_graph():
    for counts in ([0, 0], [1, 0], [1, 1]):
        q, k, boxes, valid = _inputs(counts, k_max=1)
        q.requires_grad_(True)
        loss = IntraImageDiscriminationLoss()(q, k, boxes, valid)
        assert torch.isfinite(loss) and loss.item() == 0
        loss.backward()
        assert torch.isfinite(q.grad).all()


def test_intra_loss_overlapping_pairs_excluded_and_weight():
    q, k, boxes, valid = _inputs([2], k_max=2)
    boxes[0, 1] = boxes[0, 0] + 1.  # heavy overlap: no valid pair
    assert intra_image_discrimination_loss(
        q, k, boxes, valid, reduction='mean').item() == 0
    q, k, boxes, valid = _inputs([3, 3], k_max=3)
    module = IntraImageDiscriminationLoss(margin=0.4, loss_weight=0.5)
    ref = _reference(q, k, boxes, [3, 3])
    assert abs(module(q, k, boxes, valid).item() - 0.5 * ref) < 1e-5
