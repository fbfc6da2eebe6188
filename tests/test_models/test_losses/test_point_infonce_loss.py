import math

import pytest
import torch
import torch.nn.functional as F

from mmregion.models.losses import PointInfoNCELoss, point_supcon_loss


def _loop_reference(z, labels, valid, views, tau, tau_b, cross_view_only):
    losses = []
    N = z.size(0)
    for a in range(N):
        if not valid[a]:
            continue
        denom = sum(
            math.exp(float(z[a] @ z[c]) / tau) for c in range(N)
            if c != a and valid[c])
        pos = [
            p for p in range(N)
            if p != a and valid[p] and labels[p] == labels[a] and (
                not cross_view_only or views[p] != views[a])
        ]
        if not pos:
            continue
        s = sum(float(z[a] @ z[p]) / tau - math.log(denom) for p in pos)
        losses.append(-(tau / tau_b) * s / len(pos))
    return sum(losses) / len(losses)


@pytest.mark.parametrize('cross_view_only', [False, True])
def test_point_infonce_equals_loop(cross_view_only):
    g = torch.Generator().manual_seed(0)
    N = 24
    z = F.normalize(torch.randn(N, 8, generator=g), dim=-1)
    labels = torch.randint(0, 4, (N, ), generator=g)
    views = torch.randint(0, 2, (N, ), generator=g)
    valid = torch.rand(N, generator=g) < 0.8
    loss = PointInfoNCELoss(
        temperature=0.2,
        base_temperature=0.07,
        cross_view_only=cross_view_only)(z, labels, valid, views)
    ref = _loop_reference(z, labels, valid, views, 0.2, 0.07, cross_view_only)
    assert loss.item() == pytest.approx(ref, rel=1e-5)


def test_point_infonce_masks_and_grad():
    z = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 3])
    valid = torch.tensor([True, True, True, True, True, False])
    zn = F.normalize(z, dim=-1)
    per = point_supcon_loss(zn, labels, valid)
    # label 2 has no positive, the padded point is not an anchor: both are 0
    # and the mean runs over the 4 anchors with a positive
    has_pos = torch.tensor([True, True, True, True, False, False])
    assert (per[has_pos] != 0).all()
    assert (per[~has_pos] == 0).all()
    assert point_supcon_loss(
        zn, labels, valid, reduction='mean').item() == pytest.approx(
            per.sum().item() / 4, rel=1e-6)
    # padded points do not change the loss of valid anchors
    z2 = z.detach().clone()
    z2[5] = 100.
    per2 = point_supcon_loss(F.normalize(z2, dim=-1), labels, valid)
    assert torch.allclose(per[:4], per2[:4])
    loss = PointInfoNCELoss(loss_weight=0.3)(z, labels, valid)
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad[5].abs().sum() == 0
    # all invalid: zero loss, finite grads
    z3 = torch.randn(4, 4, requires_grad=True)
    loss = PointInfoNCELoss()(z3, torch.zeros(4, dtype=torch.long),
                              torch.zeros(4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(z3.grad).all()
    with pytest.raises(ValueError, match='view_ids'):
        point_supcon_loss(z3, labels[:4], cross_view_only=True)


def _dense_masks(labels, valid, views, cross_view_only):
    """(N, N) contrast and positive masks of the formula."""
    N = labels.size(0)
    contrast = valid[None, :] & ~torch.eye(N, dtype=torch.bool)
    pos = (labels[:, None] == labels[None, :]) & contrast
    if cross_view_only:
        pos = pos & (views[:, None] != views[None, :])
    return contrast, pos


def _dense_reference(z, labels, valid, views, tau, tau_b, cross_view_only):
    """The formula with explicit (N, N) masks, differentiable."""
    logits = z @ z.t() / tau
    contrast, pos = _dense_masks(labels, valid, views, cross_view_only)
    logits = logits.masked_fill(~contrast, -1e9)
    log_prob = logits - torch.logsumexp(logits, 1, keepdim=True)
    num_pos = pos.sum(1)
    mean = (log_prob * pos).sum(1) / num_pos.clamp(min=1)
    has = valid & (num_pos > 0)
    return -(tau / tau_b) * mean[has].mean()


@pytest.mark.parametrize('cross_view_only', [False, True])
def test_point_infonce_gradients_equal_dense_masks(cross_view_only):
    """The per-region-sum numerator has the gradients of the masked form."""
    g = torch.Generator().manual_seed(1)
    N = 40
    raw = torch.randn(N, 16, generator=g, dtype=torch.float64)
    labels = torch.randint(100, 108, (N, ), generator=g)  # not 0..L-1
    views = torch.randint(0, 2, (N, ), generator=g)
    valid = torch.rand(N, generator=g) < 0.85
    grads = []
    for fn in ('ours', 'ref'):
        z = raw.clone().requires_grad_()
        zn = F.normalize(z, dim=-1)
        if fn == 'ours':
            per = point_supcon_loss(zn, labels, valid, views, 0.2, 0.07,
                                    cross_view_only)
            # the anchors with a positive (every other row must be 0)
            has = valid & _dense_masks(labels, valid, views,
                                       cross_view_only)[1].any(1)
            loss = per.sum() / has.sum()
        else:
            loss = _dense_reference(zn, labels, valid, views, 0.2, 0.07,
                                    cross_view_only)
        loss.backward()
        grads.append((loss.detach(), z.grad))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-9)
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-7, atol=1e-10)
