import math

import pytest
import torch
import torch.nn.functional as F

from mmregion.models.losses import InfoNCELoss, info_nce_loss


def _reference(query, key, queue, tau):
    """Loop form: -log(exp(pos/t) / (exp(pos/t) + sum_j exp(neg_j/t)))."""
    out = []
    for i in range(query.shape[0]):
        pos = math.exp(float(query[i] @ key[i]) / tau)
        neg = sum(
            math.exp(float(query[i] @ queue[j]) / tau)
            for j in range(queue.shape[0]))
        out.append(-math.log(pos / (pos + neg)))
    return torch.tensor(out)


def _rand(n, k, d=8):
    torch.manual_seed(0)
    return (F.normalize(torch.randn(n, d),
                        dim=1), F.normalize(torch.randn(n, d), dim=1),
            F.normalize(torch.randn(k, d), dim=1))


@pytest.mark.parametrize('tau', [0.2, 0.5])
def test_info_nce_matches_loop_reference(tau):
    q, k, queue = _rand(5, 7)
    ref = _reference(q, k, queue, tau)
    per = info_nce_loss(q, k, queue, tau, reduction='none')
    assert torch.allclose(per, ref, atol=1e-5)
    assert torch.allclose(
        info_nce_loss(q, k, queue, tau, reduction='mean'),
        ref.mean(),
        atol=1e-5)
    assert torch.allclose(
        info_nce_loss(q, k, queue, tau, reduction='sum'), ref.sum(), atol=1e-4)


def test_info_nce_weight_masks_queries():
    q, k, queue = _rand(6, 4)
    ref = _reference(q, k, queue, 0.2)
    weight = torch.tensor([1., 1., 0., 1., 0., 0.])
    loss = info_nce_loss(
        q, k, queue, 0.2, weight=weight, reduction='mean', avg_factor=3)
    assert torch.allclose(loss, ref[weight.bool()].mean(), atol=1e-5)


def test_info_nce_empty_and_module():
    q = torch.zeros(0, 8, requires_grad=True)
    loss = info_nce_loss(q, q.detach(), torch.randn(3, 8), reduction='mean')
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    module = InfoNCELoss(temperature=0.2, loss_weight=2.)
    a, b, queue = _rand(3, 2)
    assert torch.allclose(
        module(a, b, queue),
        2 * _reference(a, b, queue, 0.2).mean(),
        atol=1e-5)
    with pytest.raises(ValueError, match='queue'):
        module(a, b, torch.randn(2, 5))
    with pytest.raises(ValueError, match='temperature'):
        InfoNCELoss(temperature=0)
