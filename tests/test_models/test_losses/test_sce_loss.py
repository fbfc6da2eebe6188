import math

import pytest
import torch
import torch.nn.functional as F

from mmregion.models.losses.loc_sce_loss import LocSCELoss, loc_sce_loss
from mmregion.models.losses.sce_loss import SCELoss, sce_loss


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) \
        - inter
    return inter / max(union, 1e-6)


def _reference(student, teacher, boxes, coeff, temp, temp_m, delta):
    """Loop form of the LocSCE formula (methods.md section 3), float64."""
    nb, n, _ = student.shape
    q = F.normalize(student.double(), dim=-1).reshape(nb * n, -1)
    k = F.normalize(teacher.double(), dim=-1).reshape(nb * n, -1)
    m = nb * n
    total = 0.0
    for r in range(m):
        i, j = divmod(r, n)
        # teacher-vs-teacher distribution, self excluded
        den_t = sum(math.exp(float(k[r] @ k[c]) / temp_m) for c in range(m)
                    if c != r)
        den_s = sum(math.exp(float(q[r] @ k[c]) / temp) for c in range(m))
        w = []
        for c in range(m):
            nn_, mm = divmod(c, n)
            pos = float(c == r or (
                i == nn_ and _iou(boxes[i, j].tolist(), boxes[i, mm].tolist())
                >= delta))
            s = 0.0 if c == r else math.exp(float(k[r] @ k[c]) / temp_m) / den_t
            w.append(coeff * pos + (1 - coeff) * s)
        tot_w = sum(w)
        for c in range(m):
            p = math.exp(float(q[r] @ k[c]) / temp) / den_s
            total -= w[c] / tot_w * math.log(p)
    return total / m


def _rand_boxes(nb, n, gen):
    xy = torch.rand(nb, n, 2, generator=gen) * 50
    wh = torch.rand(nb, n, 2, generator=gen) * 40 + 5
    return torch.cat([xy, xy + wh], -1)


@pytest.mark.parametrize('delta', [0.0, 0.3, 0.5, 1.0])
def test_loc_sce_matches_loop_reference(delta):
    gen = torch.Generator().manual_seed(0)
    nb, n, d = 3, 5, 8
    student = torch.randn(nb, n, d, generator=gen)
    teacher = torch.randn(nb, n, d, generator=gen)
    boxes = _rand_boxes(nb, n, gen)
    # make some boxes overlap strongly
    boxes[0, 1] = boxes[0, 0] + 1.0
    loss, valid = loc_sce_loss(student, teacher, boxes, coeff=0.4, temp=0.2,
                               temp_m=0.07, iou_thr=delta)
    ref = _reference(student, teacher, boxes, 0.4, 0.2, 0.07, delta)
    assert valid.all()
    assert loss.mean().item() == pytest.approx(ref, rel=1e-4)
    module = LocSCELoss(coeff=0.4, temp=0.2, temp_m=0.07, iou_thr=delta,
                        loss_weight=2.0)
    assert module(student, teacher, boxes).item() == pytest.approx(
        2 * ref, rel=1e-4)


def test_sce_matches_loop_reference_and_delta_one():
    gen = torch.Generator().manual_seed(1)
    m, d = 7, 6
    student = torch.randn(m, d, generator=gen)
    teacher = torch.randn(m, d, generator=gen)
    loss, _ = sce_loss(student, teacher, coeff=0.5, temp=0.1, temp_m=0.05)
    # SCE = LocSCE with one image and boxes that only overlap themselves
    boxes = torch.tensor([[10. * i, 0., 10. * i + 8., 8.] for i in range(m)])
    ref = _reference(student[None], teacher[None], boxes[None], 0.5, 0.1,
                     0.05, 2.0)  # delta > 1: identity positives
    assert loss.mean().item() == pytest.approx(ref, rel=1e-4)
    assert SCELoss()(student, teacher).item() == pytest.approx(ref, rel=1e-4)
    # delta = 1.0 on distinct boxes of several images reduces LocSCE to SCE
    gen = torch.Generator().manual_seed(2)
    s3, t3 = torch.randn(2, 4, 5, generator=gen), torch.randn(2, 4, 5,
                                                            generator=gen)
    boxes3 = _rand_boxes(2, 4, gen)
    loc, _ = loc_sce_loss(s3, t3, boxes3, iou_thr=1.0)
    sce, _ = sce_loss(s3.reshape(8, 5), t3.reshape(8, 5))
    torch.testing.assert_close(loc, sce)
    # and differs from SCE once overlapping boxes become positives
    boxes3[0, 1] = boxes3[0, 0]
    loc_half, _ = loc_sce_loss(s3, t3, boxes3, iou_thr=0.5)
    assert not torch.allclose(loc_half, sce)


def test_sce_gradient_only_to_student():
    student = torch.randn(6, 4, requires_grad=True)
    teacher = torch.randn(6, 4, requires_grad=True)
    SCELoss()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_loc_sce_degenerate_inputs_no_nan():
    nb, n, d = 2, 4, 8
    student = torch.randn(nb, n, d, requires_grad=True)
    teacher = torch.randn(nb, n, d)
    boxes = torch.zeros(nb, n, 4)  # all zero-area boxes
    loss = LocSCELoss()(student, teacher, boxes)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    # an image without valid proposals, and a single valid proposal overall
    valid = torch.zeros(nb, n, dtype=torch.bool)
    valid[1, 0] = True
    loss_v, valid_rows = loc_sce_loss(student, teacher, boxes, valid)
    assert torch.isfinite(loss_v).all()
    assert valid_rows.sum() == 1
    assert (loss_v[~valid_rows] == 0).all()
    # nothing valid at all: a zero loss, not NaN
    none = LocSCELoss()(student, teacher, boxes,
                        torch.zeros(nb, n, dtype=torch.bool))
    assert none.item() == 0.0
    # zero embeddings
    zero = LocSCELoss()(torch.zeros(nb, n, d), torch.zeros(nb, n, d), boxes)
    assert torch.isfinite(zero)


def test_invalid_columns_are_ignored():
    gen = torch.Generator().manual_seed(3)
    student = torch.randn(1, 6, 4, generator=gen)
    teacher = torch.randn(1, 6, 4, generator=gen)
    boxes = _rand_boxes(1, 6, gen)
    valid = torch.tensor([[True, True, True, False, False, False]])
    loss, _ = loc_sce_loss(student, teacher, boxes, valid)
    sub, _ = loc_sce_loss(student[:, :3], teacher[:, :3], boxes[:, :3])
    torch.testing.assert_close(loss[:3], sub)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match='loc_sce_loss'):
        loc_sce_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4),
                     torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match='iou_thr'):
        LocSCELoss(iou_thr=1.5)
