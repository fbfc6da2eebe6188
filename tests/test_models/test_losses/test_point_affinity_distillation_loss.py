import math

import pytest
import torch

from mmregion.models.losses import (PointAffinityDistillationLoss,
                                    point_affinity_distillation_loss)


def _loop_reference(s, t, c, tau_s, tau_t, w):
    total, n = 0., 0.
    for i in range(s.size(0)):
        if w[i] == 0:
            continue
        tl = [(float(t[i, d]) - float(c[d])) / tau_t for d in range(s.size(1))]
        tz = math.log(sum(math.exp(x) for x in tl))
        sl = [float(s[i, d]) / tau_s for d in range(s.size(1))]
        sz = math.log(sum(math.exp(x) for x in sl))
        total += sum(-math.exp(tl[d] - tz) * (sl[d] - sz)
                     for d in range(s.size(1)))
        n += 1
    return total / n


def test_distillation_equals_loop_and_center_update():
    g = torch.Generator().manual_seed(0)
    M, D = 10, 7
    s = torch.randn(M, D, generator=g, requires_grad=True)
    t = torch.randn(M, D, generator=g)
    w = (torch.rand(M, generator=g) < 0.7).float()
    loss_fn = PointAffinityDistillationLoss(
        out_dim=D,
        warmup_teacher_temperature=0.04,
        teacher_temperature=0.07,
        warmup_epochs=30)
    loss_fn.center.normal_(generator=g)
    c0 = loss_fn.center.clone()
    loss_fn.progress = 15.  # half of the warm-up
    assert loss_fn.teacher_temperature == pytest.approx(0.055)
    loss = loss_fn(s, t, w)
    ref = _loop_reference(s.detach(), t, c0[0], 0.1, 0.055, w)
    assert loss.item() == pytest.approx(ref, rel=1e-5)
    # centre EMA with momentum 0.9 over the counted rows
    expected = 0.9 * c0 + 0.1 * (t * w[:, None]).sum(0) / w.sum()
    assert torch.allclose(loss_fn.center, expected, atol=1e-6)
    loss.backward()
    assert s.grad[w == 0].abs().sum() == 0 and s.grad.abs().sum() > 0
    # function form, teacher gets no gradient
    t2 = t.clone().requires_grad_()
    point_affinity_distillation_loss(s, t2, c0).sum().backward()
    assert t2.grad is None


def test_teacher_temp_schedule_and_checks():
    loss_fn = PointAffinityDistillationLoss(out_dim=3)
    assert loss_fn.teacher_temperature == pytest.approx(0.04)
    loss_fn.progress = 100
    assert loss_fn.teacher_temperature == pytest.approx(0.07)
    with pytest.raises(ValueError, match='out_dim=3'):
        loss_fn(torch.zeros(2, 4), torch.zeros(2, 4))
    loss_fn.eval()
    c = loss_fn.center.clone()
    loss_fn(torch.randn(2, 3), torch.randn(2, 3))
    assert torch.equal(c, loss_fn.center)  # no centre update in eval


def test_pair_index_equals_the_gathered_rows():
    """``pair_index`` (each row once, the pairs by index) gives the loss,
    the gradient and the centre of the per-pair rows gathered explicitly."""
    g = torch.Generator().manual_seed(3)
    Ms, Mt, M, D = 6, 5, 11, 7
    s = torch.randn(Ms, D, generator=g, requires_grad=True)
    t = torch.randn(Mt, D, generator=g)
    idx = torch.stack([
        torch.randint(Ms, (M, ), generator=g),
        torch.randint(Mt, (M, ), generator=g)
    ])
    w = (torch.rand(M, generator=g) < 0.8).float()
    s_rows = s.detach()[idx[0]].requires_grad_()
    center = torch.randn(1, D, generator=g)
    losses, centers = [], []
    for student, teacher, kwargs in ((s, t, dict(pair_index=idx)),
                                     (s_rows, t[idx[1]], {})):
        loss_fn = PointAffinityDistillationLoss(out_dim=D, loss_weight=2.)
        loss_fn.center.copy_(center)
        losses.append(loss_fn(student, teacher, w, **kwargs))
        centers.append(loss_fn.center)
        losses[-1].backward()
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)
    assert torch.allclose(centers[0], centers[1], atol=1e-6)
    assert not torch.allclose(centers[0], center)  # it was updated
    # the gradient of a row is the sum over its pairs
    grad = torch.zeros_like(s).index_add_(0, idx[0], s_rows.grad)
    assert torch.allclose(s.grad, grad, atol=1e-6)
    # 'sum' and 'none' agree with the gathered rows too
    for reduction in ('sum', 'none'):
        a = point_affinity_distillation_loss(
            s, t, center, weight=w, reduction=reduction, pair_index=idx)
        b = point_affinity_distillation_loss(
            s_rows, t[idx[1]], center, weight=w, reduction=reduction)
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5)
