import itertools

import pytest
import torch

from mmregion.models.task_modules.proposal_matcher import \
    ProposalHungarianMatcher
from mmregion.registry import TASK_UTILS


def _rand_cxcywh(b, n, gen):
    c = torch.rand(b, n, 2, generator=gen) * 0.8 + 0.1
    wh = torch.rand(b, n, 2, generator=gen) * 0.3 + 0.01
    return torch.cat([c, wh], -1)


@pytest.mark.parametrize('num_t,num_s', [(4, 4), (3, 5)])
def test_matcher_equals_brute_force(num_t, num_s):
    gen = torch.Generator().manual_seed(num_t * 10 + num_s)
    b, d = 3, 6
    matcher = TASK_UTILS.build(
        dict(
            type='ProposalHungarianMatcher',
            feat_weight=2.,
            l1_weight=5.,
            giou_weight=2.))
    te, se = torch.randn(
        b, num_t, d, generator=gen), torch.randn(
            b, num_s, d, generator=gen)
    tb, sb = _rand_cxcywh(b, num_t, gen), _rand_cxcywh(b, num_s, gen)
    inds, totals = matcher.match(te, tb, se, sb)
    cost = matcher.cost(te, tb, se, sb)
    assert inds.shape == (b, num_t) and cost.shape == (b, num_t, num_s)
    for i in range(b):
        assert len(set(inds[i].tolist())) == num_t  # one-to-one
        best = min(
            sum(cost[i, j, p[j]].item() for j in range(num_t))
            for p in itertools.permutations(range(num_s), num_t))
        got = cost[i, torch.arange(num_t), inds[i]].sum().item()
        assert got == pytest.approx(best, abs=1e-5)
        assert totals[i].item() == pytest.approx(best, abs=1e-5)


def test_matcher_cost_terms():
    gen = torch.Generator().manual_seed(0)
    te = torch.randn(1, 3, 4, generator=gen)
    tb = _rand_cxcywh(1, 3, gen)
    # identical predictions (permuted) are recovered exactly
    perm = torch.tensor([2, 0, 1])
    inds, _ = ProposalHungarianMatcher().match(te, tb, te[:, perm], tb[:,
                                                                       perm])
    assert (perm[inds[0]] == torch.arange(3)).all()
    # only the feature term: cost = -feat_weight * cosine similarity
    m = ProposalHungarianMatcher(feat_weight=1., l1_weight=0., giou_weight=0.)
    c = m.cost(te, tb, te, tb)
    torch.testing.assert_close(torch.diagonal(c[0]), -torch.ones(3))


def test_matcher_degenerate_boxes_and_errors():
    z = torch.zeros(2, 3, 4)
    inds, totals = ProposalHungarianMatcher().match(z, z, z, z)
    assert torch.isfinite(totals).all() and inds.shape == (2, 3)
    with pytest.raises(ValueError, match='one-to-one'):
        ProposalHungarianMatcher().match(
            torch.zeros(1, 3, 2), torch.rand(1, 3, 4), torch.zeros(1, 2, 2),
            torch.rand(1, 2, 4))
    bad = torch.full((1, 2, 4), float('nan'))
    with pytest.raises(FloatingPointError):
        ProposalHungarianMatcher().match(bad, bad, bad, bad)
    with pytest.raises(ValueError, match='box_format'):
        ProposalHungarianMatcher(box_format='xywh')
