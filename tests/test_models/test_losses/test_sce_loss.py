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


def _reference(student,
               teacher,
               boxes,
               coeff,
               temp,
               temp_m,
               delta,
               normalize_target=True,
               anchor='student'):
    """Loop form of the LocSCE formula (ProSeCo paper and poster),
    float64. ``anchor='teacher'``: p'_(in, j sigma_n(m)) = softmax over the
    student columns of teacher row (i, j); ``normalize_target=False``: the
    target rows as printed (no L1 normalisation)."""
    nb, n, _ = student.shape
    q = F.normalize(student.double(), dim=-1).reshape(nb * n, -1)
    k = F.normalize(teacher.double(), dim=-1).reshape(nb * n, -1)
    a, c_emb = (q, k) if anchor == 'student' else (k, q)
    m = nb * n
    total = 0.0
    for r in range(m):
        i, j = divmod(r, n)
        # teacher-vs-teacher distribution, self excluded
        den_t = sum(
            math.exp(float(k[r] @ k[c]) / temp_m) for c in range(m) if c != r)
        den_s = sum(math.exp(float(a[r] @ c_emb[c]) / temp) for c in range(m))
        w = []
        for c in range(m):
            nn_, mm = divmod(c, n)
            pos = float(c == r or (i == nn_ and _iou(
                boxes[i, j].tolist(), boxes[i, mm].tolist()) >= delta))
            s = 0.0 if c == r else math.exp(float(k[r] @ k[c]) /
                                            temp_m) / den_t
            w.append(coeff * pos + (1 - coeff) * s)
        tot_w = sum(w) if normalize_target else 1.0
        for c in range(m):
            p = math.exp(float(a[r] @ c_emb[c]) / temp) / den_s
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
    opts = dict(
        coeff=0.4,
        student_temperature=0.2,
        teacher_temperature=0.07,
        pos_iou_thr=delta,
        normalize_target=True,
        anchor='student')
    loss = loc_sce_loss(student, teacher, boxes, **opts)
    ref = _reference(student, teacher, boxes, 0.4, 0.2, 0.07, delta)
    # without `valid` every row counts: the mean is the plain one
    assert loc_sce_loss(
        student, teacher, boxes, reduction='mean', **opts).item() == \
        pytest.approx(loss.mean().item(), rel=1e-6)
    assert loss.mean().item() == pytest.approx(ref, rel=1e-4)
    module = LocSCELoss(loss_weight=2.0, **opts)
    assert module(student, teacher, boxes).item() == pytest.approx(
        2 * ref, rel=1e-4)


@pytest.mark.parametrize('normalize_target', [False, True])
@pytest.mark.parametrize('anchor', ['teacher', 'student'])
def test_loc_sce_options_match_loop_reference(normalize_target, anchor):
    """Audit items 8 and 9: the four combinations equal the loop form."""
    gen = torch.Generator().manual_seed(4)
    nb, n, d = 2, 4, 6
    student = torch.randn(nb, n, d, generator=gen)
    teacher = torch.randn(nb, n, d, generator=gen)
    boxes = _rand_boxes(nb, n, gen)
    boxes[0, 1] = boxes[0, 0] + 1.0  # P = 2 positives in these rows
    boxes[1, 2] = boxes[1, 3] - 0.5
    module = LocSCELoss(
        coeff=0.3,
        student_temperature=0.2,
        teacher_temperature=0.07,
        pos_iou_thr=0.5,
        normalize_target=normalize_target,
        anchor=anchor)
    ref = _reference(student, teacher, boxes, 0.3, 0.2, 0.07, 0.5,
                     normalize_target, anchor)
    assert module(student, teacher, boxes).item() == pytest.approx(
        ref, rel=1e-5)


def test_loc_sce_defaults_are_the_printed_formula():
    module = LocSCELoss()
    assert module.normalize_target is False and module.anchor == 'teacher'
    gen = torch.Generator().manual_seed(5)
    student = torch.randn(1, 3, 4, generator=gen, requires_grad=True)
    teacher = torch.randn(1, 3, 4, generator=gen)
    boxes = _rand_boxes(1, 3, gen)
    boxes[0, 1] = boxes[0, 0]
    ref = _reference(student.detach(), teacher, boxes, 0.5, 0.1, 0.05, 0.5,
                     False, 'teacher')
    loss = module(student, teacher, boxes)
    assert loss.item() == pytest.approx(ref, rel=1e-5)
    # the teacher-anchored loss still trains only the student
    loss.backward()
    assert student.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='anchor'):
        LocSCELoss(anchor='query')


def test_sce_matches_loop_reference_and_delta_one():
    gen = torch.Generator().manual_seed(1)
    m, d = 7, 6
    student = torch.randn(m, d, generator=gen)
    teacher = torch.randn(m, d, generator=gen)
    loss = sce_loss(
        student,
        teacher,
        coeff=0.5,
        student_temperature=0.1,
        teacher_temperature=0.05)
    # SCE = LocSCE with one image and boxes that only overlap themselves
    boxes = torch.tensor([[10. * i, 0., 10. * i + 8., 8.] for i in range(m)])
    ref = _reference(student[None], teacher[None], boxes[None], 0.5, 0.1, 0.05,
                     2.0)  # delta > 1: identity positives
    assert loss.mean().item() == pytest.approx(ref, rel=1e-4)
    assert SCELoss()(student, teacher).item() == pytest.approx(ref, rel=1e-4)
    # delta = 1.0 on distinct boxes of several images reduces LocSCE to SCE
    gen = torch.Generator().manual_seed(2)
    s3, t3 = torch.randn(
        2, 4, 5, generator=gen), torch.randn(
            2, 4, 5, generator=gen)
    boxes3 = _rand_boxes(2, 4, gen)
    sce_opts = dict(normalize_target=True, anchor='student')
    loc = loc_sce_loss(s3, t3, boxes3, pos_iou_thr=1.0, **sce_opts)
    sce = sce_loss(s3.reshape(8, 5), t3.reshape(8, 5))
    torch.testing.assert_close(loc, sce)
    # and differs from SCE once overlapping boxes become positives
    boxes3[0, 1] = boxes3[0, 0]
    loc_half = loc_sce_loss(s3, t3, boxes3, pos_iou_thr=0.5, **sce_opts)
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
    loss_v = loc_sce_loss(student, teacher, boxes, valid)
    valid_rows = valid.reshape(-1)
    assert torch.isfinite(loss_v).all()
    # the mean counts the single valid row only
    assert loc_sce_loss(
        student, teacher, boxes, valid,
        reduction='mean').item() == pytest.approx(
            loss_v.sum().item(), rel=1e-6)
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
    loss = loc_sce_loss(student, teacher, boxes, valid)
    sub = loc_sce_loss(student[:, :3], teacher[:, :3], boxes[:, :3])
    torch.testing.assert_close(loss[:3], sub)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match='loc_sce_loss'):
        loc_sce_loss(
            torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match='iou_thr'):
        LocSCELoss(pos_iou_thr=1.5)
